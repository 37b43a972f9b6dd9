// SPDX-License-Identifier: MIT

package dps

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"regexp"
	"strings"

	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// Item types of a query page (x-ms-item-type).
const (
	ItemEnrollment      = "Enrollment"
	ItemEnrollmentGroup = "EnrollmentGroup"
	ItemRegistration    = "DeviceRegistration"
)

// DefaultPageSize is the page size when x-ms-max-item-count is absent.
const DefaultPageSize = 100

// QueryPage is one page of a query: the items, the continuation token of
// the next page ("" on the last) and the item type.
type QueryPage struct {
	Items        []json.RawMessage
	Continuation string
	ItemType     string
}

// querySpec is the body of a query request.
type querySpec struct {
	Query *string `json:"query"`
}

// selectAll is what the service's query routes take: every item, written
// "*" (the Node samples) or as SELECT * FROM <collection>.
var selectAll = regexp.MustCompile(`(?i)^\s*(\*|select\s+\*\s+from\s+[a-z]+)\s*$`)

func parseQuery(body []byte) error {
	var q querySpec
	if err := decodeStrict(body, &q, "query specification"); err != nil {
		return err
	}
	if q.Query == nil {
		return BadRequest("The query specification needs a query, such as \"SELECT * FROM enrollments\".")
	}
	if !selectAll.MatchString(*q.Query) {
		return Unsupported("The emulator's enrollment queries take '*' or 'SELECT * FROM <collection>'; '%s' is more than that.", *q.Query)
	}
	return nil
}

// QueryEnrollments pages through the individual enrollments.
func (s *Service) QueryEnrollments(ctx context.Context, body []byte, pageSize int, continuation string) (*QueryPage, error) {
	return s.query(body, pageSize, continuation, store.DPSEnrollments, ItemEnrollment, func(raw []byte) (json.RawMessage, bool, error) {
		var e IndividualEnrollment
		if err := json.Unmarshal(raw, &e); err != nil {
			return nil, false, err
		}
		b, err := json.Marshal(s.enrollmentView(&e, nil))
		return b, true, err
	})
}

// QueryGroups pages through the enrollment groups.
func (s *Service) QueryGroups(ctx context.Context, body []byte, pageSize int, continuation string) (*QueryPage, error) {
	return s.query(body, pageSize, continuation, store.DPSGroups, ItemEnrollmentGroup, func(raw []byte) (json.RawMessage, bool, error) {
		var g EnrollmentGroup
		if err := json.Unmarshal(raw, &g); err != nil {
			return nil, false, err
		}
		b, err := json.Marshal(s.groupView(&g))
		return b, true, err
	})
}

// QueryGroupRegistrations pages through the registration states of the
// devices registered through a group.
func (s *Service) QueryGroupRegistrations(ctx context.Context, groupID string, body []byte, pageSize int, continuation string) (*QueryPage, error) {
	return s.query(body, pageSize, continuation, store.DPSRegistrations, ItemRegistration, func(raw []byte) (json.RawMessage, bool, error) {
		var r registration
		if err := json.Unmarshal(raw, &r); err != nil {
			return nil, false, err
		}
		if !strings.EqualFold(r.GroupID, groupID) {
			return nil, false, nil
		}
		b, err := json.Marshal(r.State)
		return b, true, err
	})
}

// query walks bucket b in key order from the continuation token, which is
// the encoded key of the next item.
func (s *Service) query(body []byte, pageSize int, continuation string, b store.Bucket, itemType string,
	render func([]byte) (json.RawMessage, bool, error)) (*QueryPage, error) {
	if err := parseQuery(body); err != nil {
		return nil, err
	}
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	start := ""
	if continuation != "" {
		k, err := base64.RawURLEncoding.DecodeString(continuation)
		if err != nil || len(k) == 0 {
			return nil, BadRequest("The continuation token '%s' is not one this service issued.", continuation)
		}
		start = string(k)
	}
	page := &QueryPage{Items: []json.RawMessage{}, ItemType: itemType}
	err := s.db.View(func(tx *store.Tx) error {
		return tx.ForEach(b, "", start, func(k string, v []byte) error {
			item, ok, err := render(v)
			if err != nil || !ok {
				return err
			}
			if len(page.Items) == pageSize {
				// The token names the first item of the next page, so a
				// last page is never empty.
				page.Continuation = base64.RawURLEncoding.EncodeToString([]byte(k))
				return store.ErrStop
			}
			page.Items = append(page.Items, item)
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}
