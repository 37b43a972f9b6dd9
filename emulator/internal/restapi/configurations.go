// SPDX-License-Identifier: MIT

package restapi

import (
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/iothubemulator/iothub/emulator/internal/hub"
	"github.com/iothubemulator/iothub/emulator/internal/huberr"
)

// configurationBody is what a PUT /configurations/{id} may set. The
// read-only members SDKs send back from a fetched configuration
// (createdTimeUtc, lastUpdatedTimeUtc, systemMetrics, metrics.results,
// etag) are ignored.
type configurationBody struct {
	ID              string                    `json:"id"`
	SchemaVersion   string                    `json:"schemaVersion"`
	Labels          map[string]string         `json:"labels"`
	Content         *hub.ConfigurationContent `json:"content"`
	TargetCondition string                    `json:"targetCondition"`
	Priority        *json.Number              `json:"priority"`
	Metrics         *struct {
		Queries map[string]string `json:"queries"`
	} `json:"metrics"`
}

func (s *server) putConfiguration(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	var body *configurationBody
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body == nil {
		return huberr.ArgumentNull("The configuration must not be null.")
	}
	if body.ID != "" && body.ID != id {
		return huberr.ArgumentInvalid("The id '%s' in the body does not match '%s' in the path.", body.ID, id)
	}
	in := &hub.ConfigurationInput{
		ID: id, SchemaVersion: body.SchemaVersion, Labels: body.Labels,
		TargetCondition: body.TargetCondition,
	}
	if body.Content != nil {
		in.Content = *body.Content
	}
	if body.Priority != nil {
		p, err := strconv.Atoi(body.Priority.String())
		if err != nil {
			return huberr.ArgumentInvalid("priority must be an integer; got %s.", body.Priority.String())
		}
		in.Priority = p
	}
	if body.Metrics != nil {
		in.MetricQueries = body.Metrics.Queries
	}
	c, err := s.hub.PutConfiguration(r.Context(), in, r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

func (s *server) getConfiguration(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	c, err := s.hub.GetConfiguration(r.Context(), id)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, c)
}

func (s *server) listConfigurations(w http.ResponseWriter, r *http.Request) error {
	top := 0
	if v := r.URL.Query().Get("top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return huberr.ArgumentInvalid("top must be a non-negative integer; got '%s'.", v)
		}
		top = n
	}
	cs, err := s.hub.ListConfigurations(r.Context(), top)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, cs)
}

func (s *server) deleteConfiguration(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	if err := s.hub.DeleteConfiguration(r.Context(), id, r.Header.Get("If-Match")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *server) testConfigurationQueries(w http.ResponseWriter, r *http.Request) error {
	var body *hub.ConfigurationQueriesTest
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body == nil {
		return huberr.ArgumentNull("The queries to test must not be null.")
	}
	return writeJSON(w, http.StatusOK, s.hub.TestConfigurationQueries(body))
}

func (s *server) applyConfigurationContent(w http.ResponseWriter, r *http.Request) error {
	id, err := pathVar(r, "id")
	if err != nil {
		return err
	}
	var body *hub.ConfigurationContent
	if err := readJSON(r, &body); err != nil {
		return err
	}
	if body == nil {
		return huberr.ArgumentNull("The configuration content must not be null.")
	}
	if err := s.hub.ApplyConfigurationContent(r.Context(), id, *body); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
