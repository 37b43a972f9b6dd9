#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# soak.sh: run the emulator as its own process under mixed traffic for a
# long time and check that it neither grows nor loses replies. Not part of
# make test: the default run takes 30 minutes.
#
#   scripts/soak.sh                       # 1,000 devices, 30 minutes
#   DEVICES=200 DURATION=5m scripts/soak.sh
#
# Devices (the fleet simulator, iothub simulate) send telemetry and
# reported properties, answer direct methods, acknowledge desired patches
# and receive cloud-to-device messages; a service loop invokes a method,
# updates a desired property and sends a C2D message to a random device
# about once a second. The emulator's anonymous resident memory (its heap
# and stacks: the database file's mapped pages, which grow with the
# telemetry log up to its retention, are reported apart) and goroutines
# are sampled every SAMPLE seconds. The run fails when, after WARMUP,
# either grew by more than GROWTH_PCT percent (the mean of the last fifth
# of the samples against the mean of the first fifth after warm-up), when
# a method call or a service request failed, or when the simulator counted
# errors or lost connections. Everything binds loopback only.
set -euo pipefail

DEVICES=${DEVICES:-1000}
DURATION=${DURATION:-30m}
WARMUP=${WARMUP:-5m}
SAMPLE=${SAMPLE:-15}
GROWTH_PCT=${GROWTH_PCT:-5}
TELEMETRY_RATE=${TELEMETRY_RATE:-200}
REPORT_RATE=${REPORT_RATE:-50}

secs() { # 30m, 90s, 1h -> seconds
	local v=$1
	case $v in
	*h) echo $((${v%h} * 3600)) ;;
	*m) echo $((${v%m} * 60)) ;;
	*s) echo "${v%s}" ;;
	*) echo "$v" ;;
	esac
}
run_s=$(secs "$DURATION")
warm_s=$(secs "$WARMUP")
if ((warm_s >= run_s)); then
	warm_s=$((run_s / 5))
fi

cd "$(dirname "$0")/.."
work=$(mktemp -d /tmp/soak.XXXXXX)
echo "soak: $DEVICES devices for $DURATION (warm-up $((warm_s))s), work dir $work" >&2
go build -o "$work/iothub-emulator" ./cmd/iothub-emulator
go build -o "$work/iothub" ./cmd/iothub

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
https=127.0.0.1:$(free_port)
mqtt=127.0.0.1:$(free_port)
metrics=127.0.0.1:$(free_port)
ulimit -n "$((DEVICES * 2 + 1024))" 2>/dev/null || true

"$work/iothub-emulator" --data-dir "$work/data" --https-addr "$https" --mqtt-addr "$mqtt" \
	--amqp-addr off --amqp-plain-addr off --metrics-addr "$metrics" --log-level warn \
	>"$work/emulator.out" 2>"$work/emulator.err" &
emu=$!
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	kill "$emu" 2>/dev/null || true
	wait 2>/dev/null || true
}
trap cleanup EXIT
"$work/iothub-emulator" healthcheck --wait 1m "$https" >/dev/null

IOTHUB_CONNECTION_STRING=$(grep -o 'HostName=[^;[:space:]]*;SharedAccessKeyName=iothubowner;SharedAccessKey=[^;[:space:]]*' "$work/emulator.out" | head -1)
export IOTHUB_CONNECTION_STRING
export IOTHUB_CA_FILE="$work/data/ca.pem"

# The fleet: it runs until its standard input closes.
mkfifo "$work/sim.in"
"$work/iothub" simulate --devices "$DEVICES" --prefix soak --create --delete --mqtt-host "$mqtt" \
	--msgs-per-sec "$TELEMETRY_RATE" --reports-per-sec "$REPORT_RATE" --ack-desired --c2d \
	--persistent-session --duration 0 --until-stdin-closes --progress 60s --summary-file "$work/summary.json" \
	<"$work/sim.in" >"$work/sim.out" 2>"$work/sim.err" &
sim=$!
exec 3>"$work/sim.in" # held open until the end
for _ in $(seq 1 600); do
	if grep -q "connected $DEVICES |" "$work/sim.err" 2>/dev/null; then break; fi
	if ! kill -0 "$sim" 2>/dev/null; then
		echo "soak: the simulator ended early:" >&2
		cat "$work/sim.err" >&2
		exit 1
	fi
	sleep 1
done

# The service: a method call, a desired patch and a C2D message to a
# random device about once a second; every failure is counted.
: >"$work/service.failures"
(
	i=0
	while true; do
		id=$(printf 'soak-%06d' $((RANDOM % DEVICES)))
		"$work/iothub" method invoke "$id" --name ping --payload '{"i":'$i'}' >/dev/null 2>>"$work/service.failures.log" || echo "method $id" >>"$work/service.failures"
		"$work/iothub" twin update "$id" --desired '{"soak":'$i'}' >/dev/null 2>>"$work/service.failures.log" || echo "desired $id" >>"$work/service.failures"
		"$work/iothub" c2d send "$id" --body "soak $i" >/dev/null 2>>"$work/service.failures.log" || echo "c2d $id" >>"$work/service.failures"
		i=$((i + 1))
		sleep 1
	done
) &
service=$!
pids+=("$service")

metric() { # name -> value from /metrics
	curl -sf "http://$metrics/metrics" | awk -v m="$1" '$1 == m { print $2; exit }'
}
kb() { awk -v k="$1:" '$1 == k { print $2 * 1024; exit }' "/proc/$emu/smaps_rollup"; }
echo "t_s,anon_bytes,file_bytes,heap_inuse_bytes,goroutines,connected,db_bytes" >"$work/samples.csv"
start=$(date +%s)
while (($(date +%s) - start < run_s)); do
	t=$(($(date +%s) - start))
	echo "$t,$(kb Anonymous),$(kb Pss_File),$(metric go_memstats_heap_inuse_bytes),$(metric go_goroutines),$(metric 'iothub_connected_devices{transport="mqtt"}'),$(stat -c %s "$work/data/iothub.db")" >>"$work/samples.csv"
	sleep "$SAMPLE"
done

kill "$service" 2>/dev/null || true
exec 3>&- # the simulator drains, deletes the devices and prints its summary
wait "$sim" || true

python3 - "$work" "$warm_s" "$GROWTH_PCT" <<'EOF'
import csv, json, sys
work, warm, limit = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rows = [r for r in csv.DictReader(open(work + "/samples.csv")) if r["anon_bytes"] and int(r["t_s"]) >= warm]
ok = True
if len(rows) < 10:
    print(f"soak: only {len(rows)} samples after warm-up; run longer")
    sys.exit(1)
fifth = max(len(rows) // 5, 1)
for col in ("anon_bytes", "goroutines"):
    first = sum(float(r[col]) for r in rows[:fifth]) / fifth
    last = sum(float(r[col]) for r in rows[-fifth:]) / fifth
    growth = (last - first) / first * 100
    verdict = "ok" if growth <= limit else "GREW"
    if growth > limit:
        ok = False
    print(f"soak: {col}: {first:,.0f} after warm-up, {last:,.0f} at the end: {growth:+.1f}% ({verdict}, limit {limit}%)")
for col in ("file_bytes", "heap_inuse_bytes", "db_bytes"):
    print(f"soak: {col} (not checked): {float(rows[0][col]):,.0f} after warm-up, {float(rows[-1][col]):,.0f} at the end")
fails = open(work + "/service.failures").read().split()
s = json.load(open(work + "/summary.json"))
print(f"soak: devices {s['devices']}, connected {s['connected']}, telemetry {s['telemetryAcked']} acknowledged "
      f"({s['telemetryPerSec']:.0f}/s, p99 {s['telemetryLatencyMs']['p99']} ms), reported {s['reported']}, "
      f"methods answered {s['methodsAnswered']}, desired {s['desiredReceived']}, c2d {s['c2dReceived']}, "
      f"errors {s['errors']}, connections lost {s['connectionsLost']}")
if fails:
    print(f"soak: {len(fails)//2} service requests failed (see {work}/service.failures.log)")
    ok = False
if s["errors"] or s["connectionsLost"] or s["telemetrySent"] != s["telemetryAcked"]:
    print("soak: the fleet saw errors, lost connections or unanswered messages")
    ok = False
print("soak: PASS" if ok else "soak: FAIL", f"(samples in {work}/samples.csv)")
sys.exit(0 if ok else 1)
EOF
