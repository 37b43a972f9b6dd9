// SPDX-License-Identifier: MIT

package service

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/iothubemulator/iothub/internal/wire"
)

// Configuration is an automatic device management configuration (the
// service SDKs' Configuration model): content that the hub writes into the
// desired properties of the twins its target condition selects, with the
// highest priority winning where configurations overlap, and metrics that
// count twins by query.
type Configuration struct {
	ID                 string               `json:"id"`
	SchemaVersion      string               `json:"schemaVersion,omitempty"` // "1.0" when empty
	Labels             map[string]string    `json:"labels,omitempty"`
	Content            ConfigurationContent `json:"content"`
	TargetCondition    string               `json:"targetCondition"`             // e.g. "tags.env='prod'", "*", or "FROM devices.modules WHERE ..." for modules; "" targets nothing
	CreatedTimeUTC     time.Time            `json:"createdTimeUtc,omitzero"`     // set by the hub
	LastUpdatedTimeUTC time.Time            `json:"lastUpdatedTimeUtc,omitzero"` // set by the hub
	Priority           int                  `json:"priority"`
	SystemMetrics      ConfigurationMetrics `json:"systemMetrics,omitzero"` // set by the hub: targetedCount, appliedCount (and reported counts for edge deployments)
	Metrics            ConfigurationMetrics `json:"metrics,omitzero"`       // custom metrics: set Queries; the hub fills Results
	ETag               string               `json:"etag,omitempty"`
}

// ConfigurationContent is what a configuration sets, by path in the twin:
// for device twins in DeviceContent ("properties.desired.fw": value), for
// module twins in ModuleContent, and for IoT Edge deployments in
// ModulesContent, per module id ("$edgeAgent": {"properties.desired": ...}).
// Values are encoded with encoding/json. A configuration uses one of the
// three; the hub fixes the content at creation.
type ConfigurationContent struct {
	DeviceContent  map[string]any            `json:"deviceContent,omitempty"`
	ModulesContent map[string]map[string]any `json:"modulesContent,omitempty"`
	ModuleContent  map[string]any            `json:"moduleContent,omitempty"`
}

// ConfigurationMetrics are named queries (SELECT deviceId FROM devices
// WHERE ...) and the number of rows each returned when the configuration
// was read.
type ConfigurationMetrics struct {
	Results map[string]int64  `json:"results,omitempty"`
	Queries map[string]string `json:"queries,omitempty"`
}

// ConfigurationQueriesTestResult says what is wrong with a target condition
// and custom metric queries; empty when they are valid.
type ConfigurationQueriesTestResult struct {
	TargetConditionError    string            `json:"targetConditionError"`
	CustomMetricQueryErrors map[string]string `json:"customMetricQueryErrors"` // metric name -> error, for the invalid ones only
}

// TwinConfiguration is the status of a configuration on a twin that it
// targets: ConfigurationApplied when it set at least one of the twin's
// desired properties, ConfigurationTargeted when configurations of higher
// priority set them all.
type TwinConfiguration struct {
	Status string `json:"status"`
}

// Statuses of TwinConfiguration, as the hub writes them; metric queries
// compare configurations.[[id]].status with 'Applied'.
const (
	ConfigurationTargeted = "Targeted"
	ConfigurationApplied  = "Applied"
)

func configurationPath(id string) string { return "/configurations/" + wire.Escape(id) }

// CreateConfiguration creates configuration c (PUT /configurations/{id}
// without If-Match): an existing id fails with ErrAlreadyExists. Ids are
// lower-case. It returns the configuration the hub stored, with its etag
// and metrics. It is never retried.
func (c *Client) CreateConfiguration(ctx context.Context, cfg *Configuration) (*Configuration, error) {
	if cfg == nil || cfg.ID == "" {
		return nil, errorf("CreateConfiguration", "configuration id is required")
	}
	body := withSchemaVersion(cfg)
	out := new(Configuration)
	if _, err := c.do(ctx, &call{op: "CreateConfiguration", method: http.MethodPut, path: configurationPath(cfg.ID), body: &body}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// UpdateConfiguration replaces the changeable parts of configuration
// cfg.ID: target condition, priority, labels and metric queries (the hub
// refuses a changed content with ErrBadRequest). With cfg.ETag set the
// update only happens if the configuration still has that etag (otherwise
// ErrPreconditionFailed); an empty ETag forces it (If-Match "*"). A
// configuration that does not exist gives ErrNotFound. It is retried as
// UpdateDevice is.
func (c *Client) UpdateConfiguration(ctx context.Context, cfg *Configuration) (*Configuration, error) {
	if cfg == nil || cfg.ID == "" {
		return nil, errorf("UpdateConfiguration", "configuration id is required")
	}
	body := withSchemaVersion(cfg)
	out := new(Configuration)
	_, err := c.do(ctx, &call{
		op: "UpdateConfiguration", method: http.MethodPut, path: configurationPath(cfg.ID),
		header: ifMatch(cfg.ETag), body: &body, idempotent: true,
	}, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// withSchemaVersion is cfg with schemaVersion "1.0" when it has none, as
// the Node and C# SDKs send it.
func withSchemaVersion(cfg *Configuration) Configuration {
	body := *cfg
	if body.SchemaVersion == "" {
		body.SchemaVersion = "1.0"
	}
	return body
}

// GetConfiguration returns configuration id with its metrics counted now.
func (c *Client) GetConfiguration(ctx context.Context, id string) (*Configuration, error) {
	if id == "" {
		return nil, errorf("GetConfiguration", "configuration id is required")
	}
	out := new(Configuration)
	if _, err := c.do(ctx, &call{op: "GetConfiguration", method: http.MethodGet, path: configurationPath(id), idempotent: true}, out); err != nil {
		return nil, err
	}
	return out, nil
}

// ListConfigurations returns up to top configurations (GET
// /configurations?top=N); top 0 returns them all (a hub holds at most
// 100).
func (c *Client) ListConfigurations(ctx context.Context, top int) ([]*Configuration, error) {
	if top < 0 {
		return nil, errorf("ListConfigurations", "top must not be negative")
	}
	cl := &call{op: "ListConfigurations", method: http.MethodGet, path: "/configurations", idempotent: true}
	if top > 0 {
		cl.query = "top=" + strconv.Itoa(top)
	}
	var out []*Configuration
	if _, err := c.do(ctx, cl, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteConfiguration deletes configuration id; the hub removes its
// settings from the twins it applied to. With a non-empty etag the delete
// only happens if the configuration still has that etag. Retries follow
// DeleteDevice's rules (the hub reports a missing configuration with the
// DeviceNotFound code).
func (c *Client) DeleteConfiguration(ctx context.Context, id, etag string) error {
	if id == "" {
		return errorf("DeleteConfiguration", "configuration id is required")
	}
	_, err := c.do(ctx, &call{
		op: "DeleteConfiguration", method: http.MethodDelete, path: configurationPath(id),
		header: ifMatch(etag), idempotent: true, goneCode: CodeDeviceNotFound,
	}, nil)
	return err
}

// TestConfigurationQueries asks the hub whether a target condition and
// custom metric queries are valid (POST /configurations/testQueries),
// without creating anything.
func (c *Client) TestConfigurationQueries(ctx context.Context, targetCondition string, metricQueries map[string]string) (*ConfigurationQueriesTestResult, error) {
	body := struct {
		TargetCondition     string            `json:"targetCondition"`
		CustomMetricQueries map[string]string `json:"customMetricQueries"`
	}{targetCondition, metricQueries}
	if body.CustomMetricQueries == nil {
		body.CustomMetricQueries = map[string]string{}
	}
	out := new(ConfigurationQueriesTestResult)
	_, err := c.do(ctx, &call{op: "TestConfigurationQueries", method: http.MethodPost, path: "/configurations/testQueries",
		body: &body, idempotent: true}, out)
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ApplyConfigurationContent sets the modules of IoT Edge device deviceID
// (POST /devices/{id}/applyConfigurationContent, what `az iot edge
// set-modules` does): content.ModulesContent is required and goes to the
// module twins ($edgeAgent, $edgeHub and the modules it names);
// DeviceContent, optional, to the device twin. A device that is not an
// edge device gives ErrBadRequest. It is never retried.
func (c *Client) ApplyConfigurationContent(ctx context.Context, deviceID string, content *ConfigurationContent) error {
	if deviceID == "" || content == nil {
		return errorf("ApplyConfigurationContent", "device id and content are required")
	}
	_, err := c.do(ctx, &call{op: "ApplyConfigurationContent", method: http.MethodPost,
		path: devicePath(deviceID) + "/applyConfigurationContent", body: content}, nil)
	return err
}
