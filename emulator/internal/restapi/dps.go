// SPDX-License-Identifier: MIT

package restapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"

	"github.com/iothubemulator/iothub/emulator/internal/dps"
)

// dpsPipeline is pipeline for the provisioning routes: tracking id ->
// api-version -> service authorization (service routes; the device routes
// are authorized by package dps, which must see the body first to refuse
// TPM cleanly) -> handler -> DPS error body.
func (s *server) dpsPipeline(rt dpsRoute) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tracking := newTrackingID()
		w.Header().Set("x-ms-request-id", tracking)
		fail := func(err error) {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				err = dps.TooLarge("The request body is larger than %d bytes.", maxBody)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				err = &dps.Error{Status: http.StatusRequestTimeout, Code: 408001, Message: fmt.Sprintf("The request body did not arrive within %s.", s.bodyTimeout)}
			}
			e := dps.AsError(err)
			if e.Status >= 500 {
				s.hub.Logger().Error("provisioning request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			body := e.Body(tracking, s.hub.Now())
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			w.WriteHeader(e.Status)
			_, _ = w.Write(body)
		}
		if v := r.URL.Query().Get("api-version"); !apiVersion.MatchString(v) {
			fail(dps.BadRequest("The api-version query parameter is missing or not a version (YYYY-MM-DD); the service API takes 2021-10-01, the device API 2019-03-31."))
			return
		}
		if rt.kind == dpsServiceRoute {
			if err := s.dps.AuthorizeService(r.Header.Get("Authorization"), rt.rights); err != nil {
				fail(err)
				return
			}
		}
		s.setDeadlines(w, r)
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		if err := rt.handler(s, w, r); err != nil {
			fail(err)
		}
	})
}

// dpsVar returns a path variable, unescaped, with failures as DPS errors.
func dpsVar(r *http.Request, name string) (string, error) {
	v, err := pathVar(r, name)
	if err != nil {
		return "", dps.BadRequest("The path segment for %s is not validly escaped.", name)
	}
	return v, nil
}

// dpsCredentials are the device's credentials of a device API request: the
// ID scope and registration id of the path, and the Authorization header
// or, for X.509 devices, the TLS client certificates.
func dpsCredentials(r *http.Request) (dps.Credentials, error) {
	scope, err := dpsVar(r, "scope")
	if err != nil {
		return dps.Credentials{}, err
	}
	rid, err := dpsVar(r, "rid")
	if err != nil {
		return dps.Credentials{}, err
	}
	c := dps.Credentials{IDScope: scope, RegistrationID: rid, Token: r.Header.Get("Authorization")}
	if r.TLS != nil {
		c.Chain = r.TLS.PeerCertificates
	}
	return c, nil
}

// writeOperation answers with an operation and, while it is still
// assigning, the retry-after header the SDKs wait by.
func (s *server) writeOperation(w http.ResponseWriter, op *dps.RegistrationOperationStatus) error {
	status := http.StatusOK
	if op.Status == dps.RegAssigning {
		status = http.StatusAccepted
		w.Header().Set("Retry-After", strconv.Itoa(s.dps.RetryAfter()))
	}
	return writeJSON(w, status, op)
}

func (s *server) dpsRegister(w http.ResponseWriter, r *http.Request) error {
	c, err := dpsCredentials(r)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	op, err := s.dps.Register(r.Context(), c, body)
	if err != nil {
		return err
	}
	return s.writeOperation(w, op)
}

func (s *server) dpsOperation(w http.ResponseWriter, r *http.Request) error {
	c, err := dpsCredentials(r)
	if err != nil {
		return err
	}
	opID, err := dpsVar(r, "op")
	if err != nil {
		return err
	}
	op, err := s.dps.OperationStatus(r.Context(), c, opID)
	if err != nil {
		return err
	}
	return s.writeOperation(w, op)
}

func (s *server) dpsRegistrationStatus(w http.ResponseWriter, r *http.Request) error {
	c, err := dpsCredentials(r)
	if err != nil {
		return err
	}
	res, err := s.dps.RegistrationStatus(r.Context(), c)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

// dpsBody reads a service API request body.
func dpsBody(r *http.Request) ([]byte, error) { return io.ReadAll(r.Body) }

func (s *server) dpsPutEnrollment(w http.ResponseWriter, r *http.Request) error {
	id, err := dpsVar(r, "id")
	if err != nil {
		return err
	}
	body, err := dpsBody(r)
	if err != nil {
		return err
	}
	e, err := s.dps.PutEnrollment(r.Context(), id, body, r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (s *server) dpsGetEnrollment(w http.ResponseWriter, r *http.Request) error {
	id, err := dpsVar(r, "id")
	if err != nil {
		return err
	}
	e, err := s.dps.GetEnrollment(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, e)
}

func (s *server) dpsDeleteEnrollment(w http.ResponseWriter, r *http.Request) error {
	id, err := dpsVar(r, "id")
	if err != nil {
		return err
	}
	if err := s.dps.DeleteEnrollment(r.Context(), id, r.Header.Get("If-Match")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) dpsEnrollmentAttestation(w http.ResponseWriter, r *http.Request) error {
	id, err := dpsVar(r, "id")
	if err != nil {
		return err
	}
	a, err := s.dps.EnrollmentAttestation(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a)
}

func (s *server) dpsBulk(w http.ResponseWriter, r *http.Request) error {
	body, err := dpsBody(r)
	if err != nil {
		return err
	}
	res, err := s.dps.BulkEnrollments(r.Context(), body)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *server) dpsPutGroup(w http.ResponseWriter, r *http.Request) error {
	id, err := dpsVar(r, "id")
	if err != nil {
		return err
	}
	body, err := dpsBody(r)
	if err != nil {
		return err
	}
	g, err := s.dps.PutGroup(r.Context(), id, body, r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, g)
}

func (s *server) dpsGetGroup(w http.ResponseWriter, r *http.Request) error {
	id, err := dpsVar(r, "id")
	if err != nil {
		return err
	}
	g, err := s.dps.GetGroup(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, g)
}

func (s *server) dpsDeleteGroup(w http.ResponseWriter, r *http.Request) error {
	id, err := dpsVar(r, "id")
	if err != nil {
		return err
	}
	if err := s.dps.DeleteGroup(r.Context(), id, r.Header.Get("If-Match")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) dpsGroupAttestation(w http.ResponseWriter, r *http.Request) error {
	id, err := dpsVar(r, "id")
	if err != nil {
		return err
	}
	a, err := s.dps.GroupAttestation(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, a)
}

func (s *server) dpsGetRegistration(w http.ResponseWriter, r *http.Request) error {
	id, err := dpsVar(r, "id")
	if err != nil {
		return err
	}
	st, err := s.dps.GetRegistration(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (s *server) dpsDeleteRegistration(w http.ResponseWriter, r *http.Request) error {
	id, err := dpsVar(r, "id")
	if err != nil {
		return err
	}
	if err := s.dps.DeleteRegistration(r.Context(), id, r.Header.Get("If-Match")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// dpsPage reads the paging headers of a query request.
func dpsPage(r *http.Request) (size int, continuation string, err error) {
	if v := r.Header.Get("x-ms-max-item-count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return 0, "", dps.BadRequest("x-ms-max-item-count must be a positive integer; got '%s'.", v)
		}
		size = n
	}
	return size, r.Header.Get("x-ms-continuation"), nil
}

func (s *server) writePage(w http.ResponseWriter, p *dps.QueryPage) error {
	w.Header().Set("x-ms-item-type", p.ItemType)
	if p.Continuation != "" {
		w.Header().Set("x-ms-continuation", p.Continuation)
	}
	return writeJSON(w, http.StatusOK, p.Items)
}

func (s *server) dpsQueryEnrollments(w http.ResponseWriter, r *http.Request) error {
	size, cont, err := dpsPage(r)
	if err != nil {
		return err
	}
	body, err := dpsBody(r)
	if err != nil {
		return err
	}
	p, err := s.dps.QueryEnrollments(r.Context(), body, size, cont)
	if err != nil {
		return err
	}
	return s.writePage(w, p)
}

func (s *server) dpsQueryGroups(w http.ResponseWriter, r *http.Request) error {
	size, cont, err := dpsPage(r)
	if err != nil {
		return err
	}
	body, err := dpsBody(r)
	if err != nil {
		return err
	}
	p, err := s.dps.QueryGroups(r.Context(), body, size, cont)
	if err != nil {
		return err
	}
	return s.writePage(w, p)
}

func (s *server) dpsQueryRegistrations(w http.ResponseWriter, r *http.Request) error {
	id, err := dpsVar(r, "id")
	if err != nil {
		return err
	}
	size, cont, err := dpsPage(r)
	if err != nil {
		return err
	}
	body, err := dpsBody(r)
	if err != nil {
		return err
	}
	p, err := s.dps.QueryGroupRegistrations(r.Context(), id, body, size, cont)
	if err != nil {
		return err
	}
	return s.writePage(w, p)
}
