// SPDX-License-Identifier: MIT

package hub

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/iothubemulator/iothub/emulator/internal/clock"
	"github.com/iothubemulator/iothub/emulator/internal/store"
)

// desiredSession records the desired notifications a device receives.
type desiredSession struct {
	mu   sync.Mutex
	got  []string
	wake chan struct{}
}

func newDesiredSession() *desiredSession { return &desiredSession{wake: make(chan struct{}, 64)} }

func (s *desiredSession) SendMethod(string, string, []byte) error { return nil }
func (s *desiredSession) Close()                                  {}
func (s *desiredSession) SendDesired(v int64, b []byte) error {
	s.mu.Lock()
	s.got = append(s.got, fmt.Sprintf("%d %s", v, b))
	s.mu.Unlock()
	s.wake <- struct{}{}
	return nil
}

// next waits for the next notification.
func (s *desiredSession) next(t *testing.T) string {
	t.Helper()
	select {
	case <-s.wake:
	case <-time.After(5 * time.Second):
		t.Fatal("no desired notification within 5s")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got[len(s.got)-1]
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// devCfg is a device configuration setting properties.desired.chiller.
func devCfg(id, cond string, prio int, value string) *ConfigurationInput {
	return &ConfigurationInput{
		ID: id, TargetCondition: cond, Priority: prio,
		Content: ConfigurationContent{DeviceContent: map[string]json.RawMessage{"properties.desired.chiller": raw(value)}},
	}
}

func putCfg(t *testing.T, h *Hub, in *ConfigurationInput, ifMatch string) *Configuration {
	t.Helper()
	c, err := h.PutConfiguration(context.Background(), in, ifMatch)
	if err != nil {
		t.Fatalf("PutConfiguration(%s): %v", in.ID, err)
	}
	return c
}

func setTags(t *testing.T, h *Hub, id Identity, tags string) {
	t.Helper()
	if _, err := h.UpdateTwin(context.Background(), id, []byte(`{"tags":`+tags+`}`), "*", false); err != nil {
		t.Fatalf("set tags of %s: %v", id, err)
	}
}

// desiredMap returns a twin's desired members without $metadata/$version.
func desiredMap(t *testing.T, h *Hub, id Identity) map[string]any {
	t.Helper()
	tw, err := h.GetTwin(context.Background(), id)
	if err != nil {
		t.Fatalf("GetTwin(%s): %v", id, err)
	}
	var m map[string]any
	if err := json.Unmarshal(tw.Properties.Desired, &m); err != nil {
		t.Fatal(err)
	}
	delete(m, "$metadata")
	delete(m, "$version")
	return m
}

func statuses(t *testing.T, h *Hub, id Identity) map[string]string {
	t.Helper()
	tw, err := h.GetTwin(context.Background(), id)
	if err != nil {
		t.Fatalf("GetTwin(%s): %v", id, err)
	}
	out := map[string]string{}
	for k, v := range tw.Configurations {
		out[k] = v.Status
	}
	return out
}

func TestConfigurationCRUD(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	in := devCfg("chillers", "tags.site='B7'", 10, `{"temp":38}`)
	in.Labels = map[string]string{"version": "1.0"}
	in.MetricQueries = map[string]string{"hot": "SELECT deviceId FROM devices WHERE properties.reported.temp > 40"}
	c := putCfg(t, h, in, "")
	want := &Configuration{
		ID: "chillers", SchemaVersion: "1.0", Labels: map[string]string{"version": "1.0"},
		Content: ConfigurationContent{
			DeviceContent:  map[string]json.RawMessage{"properties.desired.chiller": raw(`{"temp":38}`)},
			ModulesContent: map[string]map[string]json.RawMessage{}, ModuleContent: map[string]json.RawMessage{},
		},
		TargetCondition: "tags.site='B7'", CreatedTimeUTC: Time{regNow}, LastUpdatedTimeUTC: Time{regNow},
		Priority: 10, ETag: "MQ==",
		SystemMetrics: ConfigurationMetrics{
			Queries: map[string]string{
				"targetedCount": "select deviceId from devices where tags.site='B7'",
				"appliedCount":  "select deviceId from devices where configurations.[[chillers]].status = 'Applied'",
			},
			Results: map[string]int64{"targetedCount": 0, "appliedCount": 0},
		},
		Metrics: ConfigurationMetrics{Queries: in.MetricQueries, Results: map[string]int64{"hot": 0}},
	}
	if diff := cmp.Diff(want, c); diff != "" {
		t.Fatalf("created (-want +got):\n%s", diff)
	}
	got, err := h.GetConfiguration(ctx, "chillers")
	if err != nil || !cmp.Equal(want, got) {
		t.Fatalf("GetConfiguration: %v; diff %s", err, cmp.Diff(want, got))
	}

	_, err = h.PutConfiguration(ctx, devCfg("chillers", "", 1, `{}`), "")
	wantCode(t, "create existing", err, 409001)

	up := devCfg("chillers", "tags.site='B8'", 20, `{"temp":38}`)
	h.Clock().FastForward(time.Minute)
	c2, err := h.PutConfiguration(ctx, up, `"MQ=="`)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if c2.ETag != "Mg==" || c2.Priority != 20 || c2.TargetCondition != "tags.site='B8'" ||
		!c2.CreatedTimeUTC.Equal(regNow) || !c2.LastUpdatedTimeUTC.Equal(regNow.Add(time.Minute)) || len(c2.Labels) != 0 {
		t.Fatalf("updated: got %+v", c2)
	}
	_, err = h.PutConfiguration(ctx, up, `"MQ=="`)
	wantCode(t, "update with a stale etag", err, 412001)
	_, err = h.PutConfiguration(ctx, devCfg("chillers", "", 1, `{"temp":39}`), "*")
	wantCode(t, "content change", err, 400004)
	_, err = h.PutConfiguration(ctx, devCfg("ghost", "", 1, `{}`), "*")
	wantCode(t, "update of a missing configuration", err, 404001)
	if c3 := putCfg(t, h, up, "*"); c3.ETag != "Mw==" {
		t.Fatalf("forced update: etag %s, want Mw==", c3.ETag)
	}
	list, err := h.ListConfigurations(ctx, 0)
	if err != nil || len(list) != 1 || list[0].ID != "chillers" {
		t.Fatalf("ListConfigurations: %v, %v", list, err)
	}

	wantCode(t, "delete with a stale etag", h.DeleteConfiguration(ctx, "chillers", `"MQ=="`), 412001)
	if err := h.DeleteConfiguration(ctx, "chillers", `"Mw=="`); err != nil {
		t.Fatalf("delete: %v", err)
	}
	_, err = h.GetConfiguration(ctx, "chillers")
	wantCode(t, "get deleted", err, 404001)
	wantCode(t, "delete again", h.DeleteConfiguration(ctx, "chillers", ""), 404001)
}

func TestConfigurationInvalid(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	five := map[string]string{}
	for i := range 6 {
		five[fmt.Sprintf("m%d", i)] = "SELECT deviceId FROM devices"
	}
	tests := []struct {
		name string
		in   *ConfigurationInput
		code int
	}{
		{"upper-case id", devCfg("Chillers", "", 1, `{}`), 400004},
		{"id with a space", devCfg("a b", "", 1, `{}`), 400004},
		{"id with a slash", devCfg("a/b", "", 1, `{}`), 400004},
		{"id too long", devCfg(strings.Repeat("a", 129), "", 1, `{}`), 400004},
		{"empty id", devCfg("", "", 1, `{}`), 400005},
		{"negative priority", devCfg("c", "", -1, `{}`), 400004},
		{"bad target condition", devCfg("c", "tags.site = ", 1, `{}`), 400004},
		{"module condition on device content", devCfg("c", "FROM devices.modules WHERE tags.x = 1", 1, `{}`), 400004},
		{"path outside desired", &ConfigurationInput{ID: "c", Content: ConfigurationContent{DeviceContent: map[string]json.RawMessage{"tags.x": raw(`1`)}}}, 400004},
		{"empty path member", &ConfigurationInput{ID: "c", Content: ConfigurationContent{DeviceContent: map[string]json.RawMessage{"properties.desired..x": raw(`1`)}}}, 400004},
		{"bad key in value", devCfg("c", "", 1, `{"a.b":1}`), 400004},
		{"bad key in path", &ConfigurationInput{ID: "c", Content: ConfigurationContent{DeviceContent: map[string]json.RawMessage{"properties.desired.a$b": raw(`1`)}}}, 400004},
		{"section not an object", &ConfigurationInput{ID: "c", Content: ConfigurationContent{DeviceContent: map[string]json.RawMessage{"properties.desired": raw(`1`)}}}, 400004},
		{"mixed content", &ConfigurationInput{ID: "c", Content: ConfigurationContent{
			DeviceContent: map[string]json.RawMessage{"properties.desired.a": raw(`1`)},
			ModuleContent: map[string]json.RawMessage{"properties.desired.a": raw(`1`)}}}, 400004},
		{"module content without module condition", &ConfigurationInput{ID: "c", TargetCondition: "tags.x=1",
			Content: ConfigurationContent{ModuleContent: map[string]json.RawMessage{"properties.desired.a": raw(`1`)}}}, 400004},
		{"bad module id", &ConfigurationInput{ID: "c", Content: ConfigurationContent{
			ModulesContent: map[string]map[string]json.RawMessage{"a b": {"properties.desired": raw(`{}`)}}}}, 400004},
		{"six custom metrics", &ConfigurationInput{ID: "c", MetricQueries: five}, 400004},
		{"bad metric query", &ConfigurationInput{ID: "c", MetricQueries: map[string]string{"m": "SELECT FROM devices"}}, 400004},
		{"jobs metric query", &ConfigurationInput{ID: "c", MetricQueries: map[string]string{"m": "SELECT * FROM devices.jobs"}}, 400004},
		{"reserved label", &ConfigurationInput{ID: "c", Labels: map[string]string{"$x": "1"}}, 400004},
		{"long label", &ConfigurationInput{ID: "c", Labels: map[string]string{"x": strings.Repeat("v", 129)}}, 400004},
	}
	for _, tc := range tests {
		_, err := h.PutConfiguration(ctx, tc.in, "")
		wantCode(t, tc.name, err, tc.code)
	}
	if list, err := h.ListConfigurations(ctx, 0); err != nil || len(list) != 0 {
		t.Fatalf("after rejected writes: %d configurations, %v; want none", len(list), err)
	}
	_, err := h.ListConfigurations(ctx, -1)
	wantCode(t, "negative top", err, 400004)
}

func TestConfigurationQuota(t *testing.T) {
	h := newRegHub(t)
	for i := range MaxConfigurations {
		putCfg(t, h, &ConfigurationInput{ID: fmt.Sprintf("c%03d", i)}, "")
	}
	_, err := h.PutConfiguration(context.Background(), &ConfigurationInput{ID: "one-too-many"}, "")
	wantCode(t, "101st configuration", err, 403002)
	if _, err := h.GetConfiguration(context.Background(), "one-too-many"); err == nil {
		t.Fatal("the refused configuration was stored")
	}
	top, err := h.ListConfigurations(context.Background(), 3)
	if err != nil || len(top) != 3 || top[0].ID != "c000" {
		t.Fatalf("top 3: %v, %v", top, err)
	}
}

// TestConfigurationApplies walks a device in and out of two configurations'
// scopes and checks its desired properties, statuses, notifications and
// the metrics.
func TestConfigurationApplies(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	d1 := Identity{DeviceID: "d1"}
	regDevice(t, h, Device{DeviceID: "d1"})
	regDevice(t, h, Device{DeviceID: "d2"})
	s := newDesiredSession()
	c := h.Connect(d1, s, ConnectInfo{AuthMethod: "sas"})
	c.SubscribeDesired()
	t.Cleanup(c.Disconnect)
	if _, err := h.UpdateTwin(ctx, d1, []byte(`{"properties":{"desired":{"own":1}}}`), "*", false); err != nil {
		t.Fatal(err)
	}
	s.next(t)

	low := devCfg("low", "tags.site='B7'", 1, `{"temp":30,"mode":"eco"}`)
	low.Content.DeviceContent["properties.desired.low"] = raw(`true`)
	putCfg(t, h, low, "")
	if diff := cmp.Diff(map[string]any{"own": 1.0}, desiredMap(t, h, d1)); diff != "" {
		t.Fatalf("untargeted device changed (-want +got):\n%s", diff)
	}

	setTags(t, h, d1, `{"site":"B7"}`)
	if got, want := s.next(t), `3 {"chiller":{"temp":30,"mode":"eco"},"low":true,"$version":3}`; got != want {
		t.Errorf("notification: got %s, want %s", got, want)
	}
	if diff := cmp.Diff(map[string]any{"own": 1.0, "chiller": map[string]any{"temp": 30.0, "mode": "eco"}, "low": true},
		desiredMap(t, h, d1)); diff != "" {
		t.Fatalf("targeted (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"low": "Applied"}, statuses(t, h, d1)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s", diff)
	}

	// A higher priority wins the shared path; the lower keeps its own.
	putCfg(t, h, devCfg("high", "tags.site='B7' OR deviceId='d2'", 5, `{"temp":40}`), "")
	if got, want := s.next(t), `4 {"chiller":{"temp":40,"mode":null},"$version":4}`; got != want {
		t.Errorf("notification: got %s, want %s", got, want)
	}
	if diff := cmp.Diff(map[string]any{"own": 1.0, "chiller": map[string]any{"temp": 40.0}, "low": true},
		desiredMap(t, h, d1)); diff != "" {
		t.Fatalf("two configurations (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"low": "Applied", "high": "Applied"}, statuses(t, h, d1)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s", diff)
	}
	cfg, err := h.GetConfiguration(ctx, "high")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int64{"targetedCount": 2, "appliedCount": 2}, cfg.SystemMetrics.Results); diff != "" {
		t.Errorf("high metrics (-want +got):\n%s", diff)
	}

	// A configuration whose every path is taken is only Targeted.
	putCfg(t, h, devCfg("shadowed", "tags.site='B7'", 2, `{"temp":1}`), "")
	if diff := cmp.Diff(map[string]string{"low": "Applied", "high": "Applied", "shadowed": "Targeted"}, statuses(t, h, d1)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s", diff)
	}
	cfg, _ = h.GetConfiguration(ctx, "shadowed")
	if diff := cmp.Diff(map[string]int64{"targetedCount": 1, "appliedCount": 0}, cfg.SystemMetrics.Results); diff != "" {
		t.Errorf("shadowed metrics (-want +got):\n%s", diff)
	}

	// Deleting the winner hands the path to the next in line.
	if err := h.DeleteConfiguration(ctx, "high", ""); err != nil {
		t.Fatal(err)
	}
	if got, want := s.next(t), `5 {"chiller":{"temp":1},"$version":5}`; got != want {
		t.Errorf("notification: got %s, want %s", got, want)
	}
	if diff := cmp.Diff(map[string]string{"low": "Applied", "shadowed": "Applied"}, statuses(t, h, d1)); diff != "" {
		t.Fatalf("statuses after delete (-want +got):\n%s", diff)
	}

	// Leaving every scope removes every setting; the device's own stays.
	setTags(t, h, d1, `{"site":"B8"}`)
	if got, want := s.next(t), `6 {"chiller":null,"low":null,"$version":6}`; got != want {
		t.Errorf("notification: got %s, want %s", got, want)
	}
	if diff := cmp.Diff(map[string]any{"own": 1.0}, desiredMap(t, h, d1)); diff != "" {
		t.Fatalf("after leaving (-want +got):\n%s", diff)
	}
	if st := statuses(t, h, d1); len(st) != 0 {
		t.Fatalf("statuses after leaving: %v, want none", st)
	}
	if got := desiredMap(t, h, Identity{DeviceID: "d2"}); len(got) != 0 {
		t.Fatalf("d2 kept %v of the deleted configuration", got)
	}
}

func TestConfigurationTargetsEverything(t *testing.T) {
	h := newRegHub(t)
	putCfg(t, h, devCfg("all", "*", 1, `{"x":1}`), "")
	putCfg(t, h, devCfg("none", "", 9, `{"x":2}`), "")
	regDevice(t, h, Device{DeviceID: "late"})
	if diff := cmp.Diff(map[string]any{"chiller": map[string]any{"x": 1.0}}, desiredMap(t, h, Identity{DeviceID: "late"})); diff != "" {
		t.Fatalf("a device created after the configuration (-want +got):\n%s", diff)
	}
	cfg, _ := h.GetConfiguration(context.Background(), "none")
	if cfg.SystemMetrics.Queries["targetedCount"] != "" || cfg.SystemMetrics.Results["targetedCount"] != 0 {
		t.Errorf("empty condition: got %v", cfg.SystemMetrics)
	}
}

// TestConfigurationTieBreak: on equal priority the later creation wins.
func TestConfigurationTieBreak(t *testing.T) {
	h := newRegHub(t)
	regDevice(t, h, Device{DeviceID: "d"})
	putCfg(t, h, devCfg("older", "*", 3, `{"v":"older"}`), "")
	h.Clock().FastForward(time.Second)
	putCfg(t, h, devCfg("newer", "*", 3, `{"v":"newer"}`), "")
	if got := desiredMap(t, h, Identity{DeviceID: "d"})["chiller"]; !cmp.Equal(got, map[string]any{"v": "newer"}) {
		t.Fatalf("got %v, want the newer configuration's value", got)
	}
}

func TestConfigurationReportedAndCustomMetrics(t *testing.T) {
	h := newRegHub(t)
	regDevice(t, h, Device{DeviceID: "d"})
	in := devCfg("fw", "properties.reported.model = '4000x'", 1, `{"version":"2"}`)
	in.MetricQueries = map[string]string{
		"current": "SELECT deviceId FROM devices WHERE configurations.[[fw]].status = 'Applied' AND properties.reported.fw = '2'",
	}
	putCfg(t, h, in, "")
	if _, err := h.PatchReported(Identity{DeviceID: "d"}, []byte(`{"model":"4000x"}`), 0); err != nil {
		t.Fatal(err)
	}
	if st := statuses(t, h, Identity{DeviceID: "d"}); st["fw"] != "Applied" {
		t.Fatalf("a reported property brought the device in scope: statuses %v", st)
	}
	cfg, _ := h.GetConfiguration(context.Background(), "fw")
	if cfg.Metrics.Results["current"] != 0 {
		t.Fatalf("current before the device reports: %v", cfg.Metrics.Results)
	}
	if _, err := h.PatchReported(Identity{DeviceID: "d"}, []byte(`{"fw":"2"}`), 0); err != nil {
		t.Fatal(err)
	}
	cfg, _ = h.GetConfiguration(context.Background(), "fw")
	if cfg.Metrics.Results["current"] != 1 || cfg.SystemMetrics.Results["appliedCount"] != 1 {
		t.Fatalf("metrics: %v %v", cfg.Metrics.Results, cfg.SystemMetrics.Results)
	}
}

func TestModuleConfiguration(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "d"})
	if _, err := h.PutModule(ctx, &Module{DeviceID: "d", ModuleID: "m1"}, ""); err != nil {
		t.Fatal(err)
	}
	in := &ConfigurationInput{ID: "mods", TargetCondition: "FROM devices.modules WHERE tags.role = 'filter'", Priority: 1,
		Content: ConfigurationContent{ModuleContent: map[string]json.RawMessage{"properties.desired.threshold": raw(`5`)}}}
	c := putCfg(t, h, in, "")
	if c.SystemMetrics.Queries["targetedCount"] != "select deviceId, moduleId from devices.modules WHERE tags.role = 'filter'" {
		t.Errorf("targetedCount query: %q", c.SystemMetrics.Queries["targetedCount"])
	}
	m1 := Identity{DeviceID: "d", ModuleID: "m1"}
	setTags(t, h, m1, `{"role":"filter"}`)
	if diff := cmp.Diff(map[string]any{"threshold": 5.0}, desiredMap(t, h, m1)); diff != "" {
		t.Fatalf("module twin (-want +got):\n%s", diff)
	}
	if len(desiredMap(t, h, Identity{DeviceID: "d"})) != 0 {
		t.Fatal("the device twin got module content")
	}
	c, _ = h.GetConfiguration(ctx, "mods")
	if diff := cmp.Diff(map[string]int64{"targetedCount": 1, "appliedCount": 1}, c.SystemMetrics.Results); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

func edgeContent(agent string) map[string]map[string]json.RawMessage {
	return map[string]map[string]json.RawMessage{
		"$edgeAgent":  {"properties.desired": raw(agent)},
		"$edgeHub":    {"properties.desired": raw(`{"routes":{"r":"FROM /messages/* INTO $upstream"}}`)},
		"tempSensor":  {"properties.desired": raw(`{"interval":5}`)},
		"unreachable": {"properties.desired.x": raw(`1`)},
	}
}

func TestEdgeDeployment(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "edge1", Capabilities: Capabilities{IotEdge: true}})
	regDevice(t, h, Device{DeviceID: "leaf"})
	setTags(t, h, Identity{DeviceID: "edge1"}, `{"env":"dev"}`)
	setTags(t, h, Identity{DeviceID: "leaf"}, `{"env":"dev"}`)
	putCfg(t, h, &ConfigurationInput{ID: "deploy1", TargetCondition: "tags.env='dev'", Priority: 10,
		Content: ConfigurationContent{ModulesContent: edgeContent(`{"modules":{"a":{"v":1}}}`)}}, "")
	agent := Identity{DeviceID: "edge1", ModuleID: "$edgeAgent"}
	if diff := cmp.Diff(map[string]any{"modules": map[string]any{"a": map[string]any{"v": 1.0}}}, desiredMap(t, h, agent)); diff != "" {
		t.Fatalf("$edgeAgent (-want +got):\n%s", diff)
	}
	if st := statuses(t, h, agent); st["deploy1"] != "Applied" {
		t.Fatalf("$edgeAgent statuses: %v", st)
	}
	if ms, _ := h.ListModules(ctx, "leaf"); len(ms) != 0 {
		t.Fatalf("a device that is not an edge device got modules %v", ms)
	}
	// A module created later gets its content.
	if _, err := h.PutModule(ctx, &Module{DeviceID: "edge1", ModuleID: "tempSensor"}, ""); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"interval": 5.0}, desiredMap(t, h, Identity{DeviceID: "edge1", ModuleID: "tempSensor"})); diff != "" {
		t.Fatalf("tempSensor (-want +got):\n%s", diff)
	}
	c, _ := h.GetConfiguration(ctx, "deploy1")
	if diff := cmp.Diff(map[string]int64{"targetedCount": 1, "appliedCount": 1, "reportedSuccessfulCount": 0, "reportedFailedCount": 0},
		c.SystemMetrics.Results); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
	// edgeAgent reports the deployment it runs.
	if _, err := h.PatchReported(agent, []byte(`{"lastDesiredVersion":2,"lastDesiredStatus":{"code":200}}`), 0); err != nil {
		t.Fatal(err)
	}
	c, _ = h.GetConfiguration(ctx, "deploy1")
	if c.SystemMetrics.Results["reportedSuccessfulCount"] != 1 {
		t.Errorf("reportedSuccessfulCount: %v", c.SystemMetrics.Results)
	}
	// A higher-priority deployment replaces the whole desired section.
	putCfg(t, h, &ConfigurationInput{ID: "deploy2", TargetCondition: "tags.env='dev'", Priority: 20,
		Content: ConfigurationContent{ModulesContent: edgeContent(`{"modules":{"b":{"v":2}}}`)}}, "")
	if diff := cmp.Diff(map[string]any{"modules": map[string]any{"b": map[string]any{"v": 2.0}}}, desiredMap(t, h, agent)); diff != "" {
		t.Fatalf("$edgeAgent after deploy2 (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{"deploy1": "Targeted", "deploy2": "Applied"}, statuses(t, h, agent)); diff != "" {
		t.Fatalf("statuses (-want +got):\n%s", diff)
	}
}

func TestApplyConfigurationContent(t *testing.T) {
	h := newRegHub(t)
	ctx := context.Background()
	regDevice(t, h, Device{DeviceID: "edge1", Capabilities: Capabilities{IotEdge: true}})
	regDevice(t, h, Device{DeviceID: "leaf"})
	content := ConfigurationContent{ModulesContent: edgeContent(`{"modules":{"a":{"v":1}},"runtime":{"type":"docker"}}`),
		DeviceContent: map[string]json.RawMessage{"properties.desired.fromEdge": raw(`true`)}}

	wantCode(t, "not an edge device", h.ApplyConfigurationContent(ctx, "leaf", content), 400004)
	wantCode(t, "unknown device", h.ApplyConfigurationContent(ctx, "ghost", content), 404001)
	wantCode(t, "no modulesContent", h.ApplyConfigurationContent(ctx, "edge1",
		ConfigurationContent{DeviceContent: map[string]json.RawMessage{"properties.desired.x": raw(`1`)}}), 400004)
	wantCode(t, "moduleContent", h.ApplyConfigurationContent(ctx, "edge1", ConfigurationContent{
		ModulesContent: edgeContent(`{}`), ModuleContent: map[string]json.RawMessage{"properties.desired.x": raw(`1`)}}), 400004)
	wantCode(t, "bad path", h.ApplyConfigurationContent(ctx, "edge1", ConfigurationContent{
		ModulesContent: map[string]map[string]json.RawMessage{"$edgeAgent": {"desired": raw(`{}`)}}}), 400004)
	if ms, _ := h.ListModules(ctx, "edge1"); len(ms) != 0 {
		t.Fatalf("rejected content created modules %v", ms)
	}

	if err := h.ApplyConfigurationContent(ctx, "edge1", content); err != nil {
		t.Fatalf("ApplyConfigurationContent: %v", err)
	}
	ms, _ := h.ListModules(ctx, "edge1")
	if len(ms) != 2 || ms[0].ModuleID != "$edgeAgent" || ms[1].ModuleID != "$edgeHub" || ms[0].Authentication.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("system modules: %+v", ms)
	}
	agent := Identity{DeviceID: "edge1", ModuleID: "$edgeAgent"}
	if diff := cmp.Diff(map[string]any{"modules": map[string]any{"a": map[string]any{"v": 1.0}}, "runtime": map[string]any{"type": "docker"}},
		desiredMap(t, h, agent)); diff != "" {
		t.Fatalf("$edgeAgent (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"fromEdge": true}, desiredMap(t, h, Identity{DeviceID: "edge1"})); diff != "" {
		t.Fatalf("device twin (-want +got):\n%s", diff)
	}
	if st := statuses(t, h, agent); len(st) != 0 {
		t.Fatalf("a device's own content shows as configuration %v", st)
	}

	// A module created later gets its content; new content replaces the old.
	if _, err := h.PutModule(ctx, &Module{DeviceID: "edge1", ModuleID: "tempSensor"}, ""); err != nil {
		t.Fatal(err)
	}
	sensor := Identity{DeviceID: "edge1", ModuleID: "tempSensor"}
	if diff := cmp.Diff(map[string]any{"interval": 5.0}, desiredMap(t, h, sensor)); diff != "" {
		t.Fatalf("tempSensor (-want +got):\n%s", diff)
	}
	next := ConfigurationContent{ModulesContent: map[string]map[string]json.RawMessage{
		"$edgeAgent": {"properties.desired": raw(`{"modules":{"b":{}}}`)},
	}}
	if err := h.ApplyConfigurationContent(ctx, "edge1", next); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"modules": map[string]any{"b": map[string]any{}}}, desiredMap(t, h, agent)); diff != "" {
		t.Fatalf("$edgeAgent after new content (-want +got):\n%s", diff)
	}
	if got := desiredMap(t, h, sensor); len(got) != 0 {
		t.Fatalf("tempSensor kept %v after content without it", got)
	}
}

// TestConfigurationsSurviveRestart reopens the store: the configuration and
// the twins' statuses are still there, and a device created afterwards is
// still targeted.
func TestConfigurationsSurviveRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	open := func() (*Hub, *store.DB) {
		db, err := store.Open(path, store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		h, err := New(db, Config{HostName: "h", Policies: DefaultPolicies(regOwnerKey), Clock: clock.At(regNow)})
		if err != nil {
			t.Fatal(err)
		}
		return h, db
	}
	h, db := open()
	regDevice(t, h, Device{DeviceID: "d"})
	putCfg(t, h, devCfg("c", "*", 1, `{"x":1}`), "")
	h.Close()
	db.Close()

	h, db = open()
	defer db.Close()
	defer h.Close()
	if st := statuses(t, h, Identity{DeviceID: "d"}); st["c"] != "Applied" {
		t.Fatalf("statuses after restart: %v", st)
	}
	regDevice(t, h, Device{DeviceID: "e"})
	if got := desiredMap(t, h, Identity{DeviceID: "e"}); !cmp.Equal(got, map[string]any{"chiller": map[string]any{"x": 1.0}}) {
		t.Fatalf("device created after restart: %v", got)
	}
	if err := h.DeleteConfiguration(context.Background(), "c", ""); err != nil {
		t.Fatal(err)
	}
	if got := desiredMap(t, h, Identity{DeviceID: "d"}); len(got) != 0 {
		t.Fatalf("settings left after delete: %v", got)
	}
}

func TestTestConfigurationQueries(t *testing.T) {
	h := newRegHub(t)
	got := h.TestConfigurationQueries(&ConfigurationQueriesTest{
		TargetCondition:     "tags.x = 'y'",
		CustomMetricQueries: map[string]string{"ok": "SELECT deviceId FROM devices", "bad": "SELECT deviceId FROM"},
	})
	if got.TargetConditionError != "" || len(got.CustomMetricQueryErrors) != 1 || got.CustomMetricQueryErrors["bad"] == "" {
		t.Fatalf("got %+v", got)
	}
	got = h.TestConfigurationQueries(&ConfigurationQueriesTest{TargetCondition: "tags.x = "})
	if got.TargetConditionError == "" || got.CustomMetricQueryErrors == nil {
		t.Fatalf("bad condition: got %+v", got)
	}
	if got := h.TestConfigurationQueries(&ConfigurationQueriesTest{TargetCondition: "from devices.modules where tags.x = 1"}); got.TargetConditionError != "" {
		t.Fatalf("module condition: got %+v", got)
	}
}

// TestConfigurationReset: the test-control reset removes configurations.
func TestConfigurationReset(t *testing.T) {
	h := newRegHub(t)
	putCfg(t, h, devCfg("c", "*", 1, `{"x":1}`), "")
	if err := h.Reset(context.Background()); err != nil {
		t.Fatal(err)
	}
	regDevice(t, h, Device{DeviceID: "d"})
	if got := desiredMap(t, h, Identity{DeviceID: "d"}); len(got) != 0 {
		t.Fatalf("a configuration outlived Reset: %v", got)
	}
}
