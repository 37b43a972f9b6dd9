// SPDX-License-Identifier: MIT

package restapi

import (
	"net/http"
	"strconv"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

func (s *server) putDevice(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	var d *hub.Device
	if err := readJSON(r, &d); err != nil {
		return err
	}
	if d == nil {
		return huberr.ArgumentNull("The device must not be null.")
	}
	if d.DeviceID == "" {
		d.DeviceID = id
	}
	if d.DeviceID != id {
		return huberr.ArgumentInvalid("The deviceId '%s' in the body does not match '%s' in the path.", d.DeviceID, id)
	}
	out, err := s.hub.PutDevice(r.Context(), d, r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) getDevice(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	d, err := s.hub.GetDevice(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, d)
}

func (s *server) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	if err := s.hub.DeleteDevice(r.Context(), id, r.Header.Get("If-Match")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) listDevices(w http.ResponseWriter, r *http.Request) error {
	top := 0
	if v := r.URL.Query().Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return huberr.ArgumentInvalid("top must be a non-negative integer; got '%s'.", v)
		}
		top = n
	}
	ds, err := s.hub.ListDevices(r.Context(), top)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []*hub.Device{}
	}
	return writeJSON(w, http.StatusOK, ds)
}

func (s *server) bulkDevices(w http.ResponseWriter, r *http.Request) error {
	var items []hub.ImportDevice
	if err := readJSON(r, &items); err != nil {
		return err
	}
	res, err := s.hub.BulkImport(r.Context(), items)
	if err != nil {
		return err
	}
	status := http.StatusOK
	if !res.IsSuccessful {
		status = http.StatusBadRequest
	}
	return writeJSON(w, status, res)
}

func (s *server) putModule(w http.ResponseWriter, r *http.Request) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	var m *hub.Module
	if err := readJSON(r, &m); err != nil {
		return err
	}
	if m == nil {
		return huberr.ArgumentNull("The module must not be null.")
	}
	if m.DeviceID == "" {
		m.DeviceID = id.DeviceID
	}
	if m.ModuleID == "" {
		m.ModuleID = id.ModuleID
	}
	if m.DeviceID != id.DeviceID || m.ModuleID != id.ModuleID {
		return huberr.ArgumentInvalid("The deviceId/moduleId in the body (%s/%s) do not match the path (%s).", m.DeviceID, m.ModuleID, id)
	}
	out, err := s.hub.PutModule(r.Context(), m, r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *server) getModule(w http.ResponseWriter, r *http.Request) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	m, err := s.hub.GetModule(r.Context(), id.DeviceID, id.ModuleID)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, m)
}

func (s *server) listModules(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	ms, err := s.hub.ListModules(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, ms)
}

func (s *server) deleteModule(w http.ResponseWriter, r *http.Request) error {
	id, err := identityOf(r)
	if err != nil {
		return err
	}
	if err := s.hub.DeleteModule(r.Context(), id.DeviceID, id.ModuleID, r.Header.Get("If-Match")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) registryStats(w http.ResponseWriter, r *http.Request) error {
	st, err := s.hub.RegistryStats(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, st)
}

func (s *server) serviceStats(w http.ResponseWriter, r *http.Request) error {
	return writeJSON(w, http.StatusOK, s.hub.ServiceStats())
}
