// SPDX-License-Identifier: MIT

package restapi

import (
	"net/http"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
)

// Registry import/export jobs (REST "Jobs": Create Import Export Job, Get
// Import Export Job(s), Cancel Import Export Job). They are not the jobs
// of /jobs/v2, which schedule twin updates and methods.

func (s *server) createIEJob(w http.ResponseWriter, r *http.Request) error {
	var req hub.ImportExportRequest
	if err := readJSON(r, &req); err != nil {
		return err
	}
	job, err := s.hub.CreateImportExportJob(r.Context(), req)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, job)
}

func (s *server) getIEJob(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "job")
	if err != nil {
		return err
	}
	job, err := s.hub.GetImportExportJob(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, job)
}

func (s *server) listIEJobs(w http.ResponseWriter, r *http.Request) error {
	jobs, err := s.hub.ListImportExportJobs(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, jobs)
}

func (s *server) cancelIEJob(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "job")
	if err != nil {
		return err
	}
	job, err := s.hub.CancelImportExportJob(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, job)
}
