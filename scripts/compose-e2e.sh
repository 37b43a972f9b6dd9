#!/usr/bin/env bash
# Proves that `docker compose up` works from this checkout, for real:
#   1. a Docker engine (started here if none runs) and the compose v2 plugin
#      (built from the Go module proxy if missing);
#   2. a local Go builder image (no registry needed) and the images;
#   3. `docker compose up -d --wait`: the emulator healthy on 443, 8883 and
#      5671 (and plain AMQP on the host's 127.0.0.1:5672);
#   4. the tutorial profile end to end, asserted on the service app's output,
#      with no pull error before its images are built;
#   5. our Go clients and the official Node SDKs against the published ports
#      (go test ./e2e -run TestExternalHub), file upload to Azurite included;
#   6. the Testcontainers module (testcontainers/) against the image built
#      in step 2;
#   7. `docker compose --profile tutorial down -v`, the README's reset: no
#      container, network or volume of the project is left.
#
# If no Docker engine can start, it fails, unless IOTHUB_SKIP_DOCKER=1 is set
# (documented in the README); it never passes silently.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"

COMPOSE_VERSION=v2.40.3
PROJECT=iothub-compose-e2e
started_dockerd=""

log() { echo "== compose-e2e: $*"; }
die() { echo "compose-e2e: $*" >&2; exit 1; }

if [ "${IOTHUB_SKIP_DOCKER:-}" = "1" ]; then
	log "IOTHUB_SKIP_DOCKER=1: the Docker checks are NOT run"
	exit 0
fi

cleanup() {
	set +e
	if [ -n "${compose_ready:-}" ]; then
		docker compose -p "$PROJECT" --profile tutorial logs --no-color > /tmp/compose-e2e-logs.txt 2>&1
		docker compose -p "$PROJECT" --profile tutorial down -v --remove-orphans >/dev/null 2>&1
	fi
	if [ -n "$started_dockerd" ]; then
		kill "$started_dockerd" 2>/dev/null
		wait "$started_dockerd" 2>/dev/null
	fi
}
trap cleanup EXIT

# 1. Docker engine.
if ! command -v docker >/dev/null || ! command -v dockerd >/dev/null; then
	log "installing docker.io"
	apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io busybox-static >/dev/null \
		|| die "could not install docker.io (set IOTHUB_SKIP_DOCKER=1 to skip the Docker checks)"
fi
[ -x /bin/busybox ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
if ! docker info >/dev/null 2>&1; then
	log "starting dockerd"
	dockerd --iptables=false >/tmp/compose-e2e-dockerd.log 2>&1 &
	started_dockerd=$!
	for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
	docker info >/dev/null 2>&1 || die "the Docker engine did not start (see /tmp/compose-e2e-dockerd.log); set IOTHUB_SKIP_DOCKER=1 to skip the Docker checks"
fi

# Compose v2: Debian 12 packages only v1, so build the plugin from the module proxy.
plugin="$HOME/.docker/cli-plugins/docker-compose"
if ! docker compose version >/dev/null 2>&1; then
	log "building the compose plugin $COMPOSE_VERSION (a few minutes, once per machine)"
	dir="$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
	[ -n "$dir" ] || die "could not download github.com/docker/compose/v2@$COMPOSE_VERSION"
	mkdir -p "$(dirname "$plugin")"
	(cd "$dir" && go build -o "$plugin" ./cmd)
fi
docker compose version

# 2. Images. Azurite's comes from mcr.microsoft.com when it can be pulled;
# CI has no registry, so it is built from this machine's node.
scripts/build-builder-image.sh iothub-go-builder:local
export IOTHUB_GO_IMAGE=iothub-go-builder:local
scripts/build-azurite-image.sh iothub-azurite:local
export IOTHUB_AZURITE_IMAGE=iothub-azurite:local
log "building images"
docker compose -p "$PROJECT" --profile tutorial build --quiet
size=$(docker image inspect iothub-emulator:local --format '{{.Size}}')
log "emulator image size: $((size / 1024 / 1024)) MiB ($size bytes)"

# 3. Up and healthy: the README's command, every default service.
compose_ready=1
start=$(date +%s%N)
docker compose -p "$PROJECT" up -d --wait
log "container start to healthy: $((($(date +%s%N) - start) / 1000000)) ms"
hc_ok=$(docker compose -p "$PROJECT" exec -T iothub /iothub-emulator healthcheck && echo yes || echo no)
[ "$hc_ok" = yes ] || die "healthcheck inside the container failed"

# 4. The tutorial inside compose, by the service name "iothub".
log "running the tutorial profile"
up_out=$(docker compose -p "$PROJECT" --profile tutorial up -d dmpatterns-device dmpatterns-service 2>&1) \
	|| die "tutorial profile up failed: $up_out"
echo "$up_out" | tail -n 5
if echo "$up_out" | grep -qiE 'pull access denied|error.*pull|failed to resolve'; then
	die "the tutorial profile printed a pull error: $up_out"
fi
svc=$(docker compose -p "$PROJECT" --profile tutorial ps -a -q dmpatterns-service)
code=$(timeout 120 docker wait "$svc") || die "the tutorial's service app did not finish within 120 s"
out=$(docker compose -p "$PROJECT" --profile tutorial logs --no-color dmpatterns-service dmpatterns-device)
echo "$out" | tail -n 20
[ "$code" = 0 ] || die "the tutorial's service app exited with $code"
echo "$out" | grep -q 'Response payload         : {"Response":"This is the response from the device"}' \
	|| die "the service app did not print the device's method response"
reboot=$(echo "$out" | sed -n 's/.*Device twins updated with latest rebootTime: \(.*\)$/\1/p' | head -n 1)
[ -n "$reboot" ] || die "the device app did not report a reboot time"
echo "$out" | grep -qF "Last reboot time: $reboot" || die "the service app never read the reported reboot time $reboot"
log "tutorial OK (reboot time $reboot)"

# 5. From the host, through the published ports.
ca=$(mktemp)
docker compose -p "$PROJECT" cp iothub:/data/ca.pem "$ca" >/dev/null
[ -d e2e/node/node_modules ] || (cd e2e/node && npm ci --no-audit --no-fund)
# Docker's userland proxy (dockerd --iptables=false) carries the published
# ports: it ends the host's side of a connection with a FIN when the
# emulator resets its own, so a KillTcp fault reaches clients as a clean
# close (IOTHUB_E2E_TCP_PROXIED tells the Node fault tests).
# Azurite shares the emulator's network and port 10000 is published: the
# host reaches it where the hub sends devices, with the hub's CA.
IOTHUB_E2E_CONNECTION_STRING="HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=SW9USHViRW11bGF0b3JXZWxsS25vd25Pd25lcktleSE=" \
IOTHUB_E2E_CA_FILE="$ca" IOTHUB_E2E_NODE=1 IOTHUB_E2E_TCP_PROXIED=1 \
IOTHUB_E2E_STORAGE_CONNECTION_STRING="DefaultEndpointsProtocol=https;AccountName=devstoreaccount1;AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;BlobEndpoint=https://127.0.0.1:10000/devstoreaccount1;" \
IOTHUB_E2E_EVENTHUB_CONNECTION_STRING="Endpoint=sb://localhost/;SharedAccessKeyName=iothubowner;SharedAccessKey=SW9USHViRW11bGF0b3JXZWxsS25vd25Pd25lcktleSE=;EntityPath=localhost" \
IOTHUB_E2E_EVENTHUB_DEV_CONNECTION_STRING="Endpoint=sb://localhost:5672/;SharedAccessKeyName=iothubowner;SharedAccessKey=SW9USHViRW11bGF0b3JXZWxsS25vd25Pd25lcktleSE=;EntityPath=localhost;UseDevelopmentEmulator=true" \
	go test -count=1 -run '^TestExternalHub$' -v ./e2e

# 6. The Testcontainers module, against the image of step 2. Ryuk, its
# reaper, is an image from Docker Hub: the test terminates its own
# container instead.
log "Testcontainers module"
(cd testcontainers && TESTCONTAINERS_RYUK_DISABLED=true IOTHUB_TESTCONTAINERS_IMAGE=iothub-emulator:local \
	go test -count=1 -v ./...)

# 7. Down, as the README says to reset (also in cleanup, for failures).
docker compose -p "$PROJECT" --profile tutorial down -v
compose_ready=""
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT"; docker volume ls -q --filter "label=com.docker.compose.project=$PROJECT"; docker network ls -q --filter "label=com.docker.compose.project=$PROJECT")
[ -z "$left" ] || die "docker compose --profile tutorial down -v left: $left"
log "OK"
