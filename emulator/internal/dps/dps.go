// SPDX-License-Identifier: MIT

package dps

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// DefaultRetryAfter is the retry-after the service sends with an
// "assigning" answer. The SDKs wait that many seconds before they ask for
// the operation's status; one second keeps tests quick and is what the
// SDKs accept (Node multiplies it by 1000, the C SDK and Python read it as
// whole seconds).
const DefaultRetryAfter = 1

// Config configures a Service.
type Config struct {
	IDScope     string        // the one ID scope devices must name; required
	HostName    string        // the provisioning host: service tokens name it; required
	ExtraHosts  []string      // other names service tokens may name (TLS SANs)
	AssignedHub func() string // the hub host name answered as assignedHub; required
	Policies    []Policy      // shared access policies of the service API; at least one
	Hub         *hub.Hub      // the hub devices are assigned to; required
	Logger      *slog.Logger  // nil: the hub's
	RetryAfter  int           // seconds; DefaultRetryAfter when 0
	HTTPClient  *http.Client  // for custom allocation webhooks; nil: one with a 30 s timeout
}

// Service is the provisioning service.
type Service struct {
	cfg      Config
	db       *store.DB
	hub      *hub.Hub
	log      *slog.Logger
	hosts    []string
	policies map[string]Policy
	client   *http.Client

	regLock [64]sync.Mutex // striped per registration id: one registration at a time
}

// New creates a Service over the hub's store.
func New(db *store.DB, cfg Config) (*Service, error) {
	switch {
	case cfg.Hub == nil:
		return nil, errors.New("dps: Hub is required")
	case cfg.HostName == "":
		return nil, errors.New("dps: HostName is required")
	case cfg.AssignedHub == nil:
		return nil, errors.New("dps: AssignedHub is required")
	}
	if err := ValidateIDScope(cfg.IDScope); err != nil {
		return nil, err
	}
	if len(cfg.Policies) == 0 {
		return nil, errors.New("dps: at least one shared access policy is required")
	}
	s := &Service{cfg: cfg, db: db, hub: cfg.Hub, log: cfg.Logger, policies: map[string]Policy{}, client: cfg.HTTPClient}
	if s.log == nil {
		s.log = cfg.Hub.Logger()
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: 30 * time.Second}
	}
	if s.cfg.RetryAfter <= 0 {
		s.cfg.RetryAfter = DefaultRetryAfter
	}
	s.hosts = append(s.hosts, strings.ToLower(cfg.HostName))
	for _, h := range cfg.ExtraHosts {
		if h != "" {
			s.hosts = append(s.hosts, strings.ToLower(h))
		}
	}
	for _, p := range cfg.Policies {
		if err := checkKey(p.PrimaryKey); err != nil {
			return nil, fmt.Errorf("dps: policy %s primary key: %v", p.Name, err)
		}
		if p.SecondaryKey != "" {
			if err := checkKey(p.SecondaryKey); err != nil {
				return nil, fmt.Errorf("dps: policy %s secondary key: %v", p.Name, err)
			}
		}
		s.policies[p.Name] = p
	}
	return s, nil
}

// IDScope is the service's ID scope.
func (s *Service) IDScope() string { return s.cfg.IDScope }

// RetryAfter is the retry-after, in seconds, of "assigning" answers.
func (s *Service) RetryAfter() int { return s.cfg.RetryAfter }

// Policy returns the named shared access policy.
func (s *Service) Policy(name string) (Policy, bool) {
	p, ok := s.policies[name]
	return p, ok
}

// Now is the hub's clock: a test that moves it moves token expiry here too.
func (s *Service) Now() time.Time { return s.hub.Now() }

func (s *Service) stamp() string { return s.Now().UTC().Format(timeLayout) }

func (s *Service) lockRegistration(id string) func() {
	f := fnv.New32a()
	f.Write([]byte(id))
	m := &s.regLock[f.Sum32()%uint32(len(s.regLock))]
	m.Lock()
	return m.Unlock
}

// Reset deletes every enrollment, group and registration state.
func (s *Service) Reset() error {
	return s.db.Update(func(tx *store.Tx) error {
		for _, b := range []store.Bucket{store.DPSEnrollments, store.DPSGroups, store.DPSRegistrations} {
			var keys []string
			if err := tx.ForEach(b, "", "", func(k string, _ []byte) error { keys = append(keys, k); return nil }); err != nil {
				return err
			}
			for _, k := range keys {
				if err := tx.Delete(b, k); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// idScopeRe is the shape of the service's ID scopes: "0ne" and eight hex
// digits, upper case, as the portal shows them. Other letters and digits
// are accepted so that a chosen scope need not be hex.
var idScopeRe = regexp.MustCompile(`^[0-9A-Za-z]{1,32}$`)

// ValidateIDScope checks an ID scope given to the emulator.
func ValidateIDScope(scope string) error {
	if !idScopeRe.MatchString(scope) {
		return fmt.Errorf("dps: ID scope %q: want 1 to 32 letters and digits, such as 0ne00000E11", scope)
	}
	return nil
}

// idRe is the service's rule for registration and enrollment group ids:
// up to 128 letters, digits and - . _ : ending in a letter, digit or '-'
// (DPS documentation, "registration ID").
var idRe = regexp.MustCompile(`^[A-Za-z0-9._:-]{0,127}[A-Za-z0-9-]$`)

// ValidateID checks a registration id or enrollment group id.
func ValidateID(kind, id string) error {
	if !idRe.MatchString(id) {
		return BadRequest("The %s '%s' is not valid: use up to 128 letters, digits and '-', '.', '_', ':', ending in a letter, digit or '-'.", kind, id)
	}
	return nil
}

// key is the store key of an id: ids are case-insensitive.
func key(id string) string { return strings.ToLower(id) }

// newETag returns an etag shaped like the service's: base64 of a quoted
// random GUID-like string.
func newETag() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return base64.StdEncoding.EncodeToString([]byte(`"` + h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:] + `"`))
}

// newOperationID returns an operation id shaped like the service's:
// "4.{16 hex}.{uuid}".
func newOperationID() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return "4." + h[:16] + "." + h[16:24] + "-" + h[24:28] + "-" + h[28:32] + "-" + h[32:36] + "-" + h[36:48]
}

// matchETag reports whether an If-Match value accepts current.
func matchETag(ifMatch, current string) bool {
	v := strings.TrimSpace(ifMatch)
	v = strings.TrimPrefix(v, "W/")
	v = strings.Trim(v, `"`)
	c := strings.Trim(current, `"`)
	return v == "" || v == "*" || v == c
}
