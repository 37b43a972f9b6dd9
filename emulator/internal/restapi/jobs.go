// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// jobRoutes are the Jobs v2 routes (iothub-protocol.md §6.8), all
// ServiceConnect (§2.4). GET /jobs/v2/query comes before GET
// /jobs/v2/{jobId}: the router takes the first match, and "query" is not a
// job id the hub could tell apart either.
func jobRoutes() []route {
	const sc = hub.ServiceConnect
	return []route{
		{"GET", "/jobs/v2/query", sc, (*server).queryJobs, serviceRoute},
		{"PUT", "/jobs/v2/{jobId}", sc, (*server).createJob, serviceRoute},
		{"GET", "/jobs/v2/{jobId}", sc, (*server).getJob, serviceRoute},
		{"POST", "/jobs/v2/{jobId}/cancel", sc, (*server).cancelJob, serviceRoute},
	}
}

// createdJob is the hub's answer to PUT /jobs/v2/{jobId}: the id, type and
// status only, e.g. {"jobId":"job01","type":"scheduleDeviceMethod",
// "status":"queued"} (devguide, "Jobs to execute direct methods"). GET
// returns the rest.
type createdJob struct {
	JobID  string `json:"jobId"`
	Type   string `json:"type"`
	Status string `json:"status"`
}

func (s *server) createJob(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "jobId")
	if err != nil {
		return err
	}
	b, err := readBody(r)
	if err != nil {
		return err
	}
	var req hub.JobRequest
	if err := json.Unmarshal(b, &req); err != nil {
		return huberr.ArgumentInvalid("The request body is not a valid job request: %v", err)
	}
	j, err := s.hub.CreateJob(r.Context(), id, &req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, createdJob{JobID: j.JobID, Type: j.Type, Status: j.Status})
}

func (s *server) getJob(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "jobId")
	if err != nil {
		return err
	}
	j, err := s.hub.GetJob(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, j)
}

func (s *server) cancelJob(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "jobId")
	if err != nil {
		return err
	}
	j, err := s.hub.CancelJob(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, j)
}

// queryJobs lists jobs, filtered by the jobType and jobStatus query
// parameters and paged like POST /devices/query: the body is a bare JSON
// array, x-ms-item-type is JobResponse and x-ms-continuation is present
// while more pages follow (the C# and Node SDKs page on the headers).
func (s *server) queryJobs(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	size := 0
	if v := r.Header.Get("x-ms-max-item-count"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			return huberr.ArgumentInvalid("x-ms-max-item-count must be a positive integer; got '%s'.", v)
		}
		size = n
	}
	page, err := s.hub.ListJobs(r.Context(), q.Get("jobType"), q.Get("jobStatus"), size, r.Header.Get("x-ms-continuation"))
	if err != nil {
		return err
	}
	w.Header().Set("x-ms-item-type", "JobResponse")
	if page.Continuation != "" {
		w.Header().Set("x-ms-continuation", page.Continuation)
	}
	return writeJSON(w, http.StatusOK, page.Items)
}
