// SPDX-License-Identifier: MIT

package query

import (
	"bytes"
	"encoding/json"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var all = []string{"dev1", "dev2", "dev3", "dev4", "dev5", "edge1"}

// TestSelectStar covers WHERE features through SELECT * over the device
// fleet; results must be the input twins, unchanged, in input order.
func TestSelectStar(t *testing.T) {
	tests := []struct {
		name  string
		query string
		want  []string
	}{
		{"all", "SELECT * FROM devices", all},
		{"lower-case keywords", "select * from devices where deviceId = 'dev1'", []string{"dev1"}},
		{"mixed-case collection", "SELECT * FROM Devices WHERE deviceId = 'dev1'", []string{"dev1"}},
		{"tag equality", "SELECT * FROM devices WHERE tags.site.building = 'B7'", []string{"dev1", "dev2", "edge1"}},
		{"tag and reported", "SELECT * FROM devices WHERE tags.site.building = 'B7' AND properties.reported.fanSpeed >= 2", []string{"dev1"}},
		{"or", "SELECT * FROM devices WHERE deviceId = 'dev3' OR deviceId = 'dev5'", []string{"dev3", "dev5"}},
		{"not", "SELECT * FROM devices WHERE NOT (status = 'enabled')", []string{"dev3"}},
		{"not binds looser than comparison", "SELECT * FROM devices WHERE NOT status = 'enabled'", []string{"dev3"}},
		{"and binds tighter than or", "SELECT * FROM devices WHERE tags.env = 'test' OR tags.env = 'prod' AND status = 'disabled'", []string{"dev2", "dev3"}},
		{"parentheses", "SELECT * FROM devices WHERE (tags.env = 'test' OR tags.env = 'prod') AND status = 'disabled'", []string{"dev3"}},
		{"in", "SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi']", []string{"dev1", "dev2", "dev4", "edge1"}},
		{"nin skips undefined", "SELECT * FROM devices WHERE properties.reported.connectivity NIN ['wired', 'wifi']", []string{"dev3"}},
		{"in with numbers and negative constant", "SELECT * FROM devices WHERE properties.reported.temp IN [-3, 19]", []string{"dev2", "dev5"}},
		{"in with computed element", "SELECT * FROM devices WHERE 'dev4' IN [deviceId, 'none']", []string{"dev4"}},
		{"in against a document array", "SELECT * FROM devices WHERE 2 IN properties.reported.levels", []string{"dev2"}},
		{"in against a non-array", "SELECT * FROM devices WHERE 'x' IN properties.reported.fw", []string{}},
		{"is_defined", "SELECT * FROM devices WHERE is_defined(properties.reported.fw)", []string{"dev1", "dev2", "dev3", "edge1"}},
		{"not is_defined", "SELECT * FROM devices WHERE NOT IS_DEFINED(properties.reported.fw)", []string{"dev4", "dev5"}},
		{"is_defined true for null", "SELECT * FROM devices WHERE IS_DEFINED(properties.reported.temp)", all},
		{"null literal", "SELECT * FROM devices WHERE properties.reported.temp = null", []string{"dev4"}},
		{"undefined literal never equal", "SELECT * FROM devices WHERE properties.reported.fw = undefined", []string{}},
		{"different types are undefined", "SELECT * FROM devices WHERE properties.reported.temp != 'x'", []string{}},
		{"not equal skips null and missing", "SELECT * FROM devices WHERE properties.reported.temp != 19", []string{"dev1", "dev3", "dev5", "edge1"}},
		{"ltgt operator", "SELECT * FROM devices WHERE properties.reported.temp <> 19 AND properties.reported.temp < 22", []string{"dev1", "dev5"}},
		{"missing property is not unequal", "SELECT * FROM devices WHERE tags.env != 'prod'", []string{"dev2"}},
		{"objects do not compare", "SELECT * FROM devices WHERE tags.site = tags.site", []string{}},
		{"top-level names are case-insensitive", "SELECT * FROM devices WHERE DEVICEID = 'dev1' OR Properties.Reported.fw = '2.0.0'", []string{"dev1", "edge1"}},
		{"tag names are case-sensitive", "SELECT * FROM devices WHERE tags.Env = 'prod'", []string{"dev4"}},
		{"collection prefix", "SELECT * FROM devices WHERE devices.deviceId = 'dev2'", []string{"dev2"}},
		{"metadata path", "SELECT * FROM devices WHERE properties.reported.$metadata.fw.$lastUpdated > '2024-01-01'", []string{"dev1", "dev2", "dev3", "edge1"}},
		{"metadata names case-insensitive", "SELECT * FROM devices WHERE properties.desired.$METADATA.fanSpeed.$lastupdatedversion = 3", []string{"edge1"}},
		{"desired version", "SELECT * FROM devices WHERE properties.desired.$version >= 2", []string{"dev1", "dev2", "dev4", "edge1"}},
		{"string ordering", "SELECT * FROM devices WHERE lastActivityTime > '2024-05-02'", []string{"dev1", "dev4", "edge1"}},
		{"less or equal", "SELECT * FROM devices WHERE properties.reported.temp <= 19", []string{"dev2", "dev5"}},
		{"greater", "SELECT * FROM devices WHERE properties.reported.temp > 25", []string{"edge1"}},
		{"arithmetic precedence", "SELECT * FROM devices WHERE properties.reported.temp * 2 + 1 > 43", []string{"dev1", "dev3", "edge1"}},
		{"modulo", "SELECT * FROM devices WHERE properties.desired.fanSpeed % 2 = 1", []string{"dev1", "edge1"}},
		{"subtraction and division", "SELECT * FROM devices WHERE (properties.reported.temp - 1) / 2 = 12", []string{"dev3"}},
		{"division by zero is undefined", "SELECT * FROM devices WHERE NOT (properties.reported.temp / 0 = 1)", []string{}},
		{"unary minus", "SELECT * FROM devices WHERE -properties.reported.temp > 0", []string{"dev5"}},
		{"unary plus wants a number", "SELECT * FROM devices WHERE IS_DEFINED(+deviceId)", []string{}},
		{"hex literal", "SELECT * FROM devices WHERE properties.desired.fanSpeed = 0x5", []string{"edge1"}},
		{"exponent literal", "SELECT * FROM devices WHERE properties.reported.temp = 2.5e1", []string{"dev3"}},
		{"double-quoted string with escapes", `SELECT * FROM devices WHERE properties.reported.location = "caf\u00e9 \"north\""`, []string{"dev5"}},
		{"single-quoted string with escapes", `SELECT * FROM devices WHERE properties.reported.location = 'café "north"' OR deviceId = 'it\'s'`, []string{"dev5"}},
		{"backslash escape", `SELECT * FROM devices WHERE CONCAT(deviceId, '\\') = 'dev1\u005c'`, []string{"dev1"}},
		{"boolean literal", "SELECT * FROM devices WHERE capabilities.iotEdge = true", []string{"edge1"}},
		{"bare boolean path", "SELECT * FROM devices WHERE capabilities.IOTEDGE", []string{"edge1"}},
		{"non-boolean condition is false", "SELECT * FROM devices WHERE deviceId", []string{}},
		{"or with undefined", "SELECT * FROM devices WHERE properties.reported.nope = 1 OR deviceId = 'dev4'", []string{"dev4"}},
		{"array index", "SELECT * FROM devices WHERE properties.reported.levels[1] = 2", []string{"dev2"}},
		{"array index out of range", "SELECT * FROM devices WHERE IS_DEFINED(properties.reported.levels[3])", []string{}},
		{"startswith", "SELECT * FROM devices WHERE STARTSWITH(deviceId, 'dev')", []string{"dev1", "dev2", "dev3", "dev4", "dev5"}},
		{"starts_with", "SELECT * FROM devices WHERE starts_with(deviceId, 'edge')", []string{"edge1"}},
		{"ends_with", "SELECT * FROM devices WHERE ENDS_WITH(deviceId, '1')", []string{"dev1", "edge1"}},
		{"endswith", "SELECT * FROM devices WHERE EndsWith(deviceId, '5')", []string{"dev5"}},
		{"contains", "SELECT * FROM devices WHERE CONTAINS(properties.reported.fw, '.2.')", []string{"dev1", "dev3"}},
		{"lower", "SELECT * FROM devices WHERE LOWER(tags.site.building) = 'b9'", []string{"dev3", "dev4"}},
		{"upper", "SELECT * FROM devices WHERE UPPER(tags.env) = 'TEST'", []string{"dev2"}},
		{"length counts characters", "SELECT * FROM devices WHERE LENGTH(properties.reported.location) = 12", []string{"dev5"}},
		{"concat", "SELECT * FROM devices WHERE CONCAT(deviceId, '-', tags.env) = 'dev2-test'", []string{"dev2"}},
		{"concat of non-string", "SELECT * FROM devices WHERE IS_DEFINED(CONCAT(deviceId, version))", []string{}},
		{"substring with length", "SELECT * FROM devices WHERE SUBSTRING(lastActivityTime, 0, 4) = '2024'", []string{"dev1", "dev2", "dev4", "edge1"}},
		{"substring to end", "SELECT * FROM devices WHERE SUBSTRING(deviceId, 3) = '1'", []string{"dev1"}},
		{"substring in characters", "SELECT * FROM devices WHERE SUBSTRING(properties.reported.location, 3, 1) = 'é'", []string{"dev5"}},
		{"index_of", "SELECT * FROM devices WHERE INDEX_OF(deviceId, 'e') = 0", []string{"edge1"}},
		{"index_of missing", "SELECT * FROM devices WHERE INDEX_OF(deviceId, 'x') = -1", all},
		{"abs", "SELECT * FROM devices WHERE ABS(properties.reported.temp) = 3", []string{"dev5"}},
		{"ceiling", "SELECT * FROM devices WHERE CEILING(properties.reported.temp) = 22", []string{"dev1"}},
		{"floor", "SELECT * FROM devices WHERE FLOOR(properties.reported.temp) = 30", []string{"edge1"}},
		{"round", "SELECT * FROM devices WHERE ROUND(properties.reported.temp) = 22", []string{"dev1"}},
		{"trunc", "SELECT * FROM devices WHERE TRUNC(properties.reported.temp) = 21", []string{"dev1"}},
		{"square", "SELECT * FROM devices WHERE SQUARE(properties.desired.fanSpeed) = 9", []string{"dev1"}},
		{"sign", "SELECT * FROM devices WHERE SIGN(properties.reported.temp) = -1", []string{"dev5"}},
		{"sqrt", "SELECT * FROM devices WHERE SQRT(properties.desired.fanSpeed * 0 + 16) = 4", []string{"dev1", "dev2", "dev4", "edge1"}},
		{"sqrt of negative is undefined", "SELECT * FROM devices WHERE IS_DEFINED(SQRT(properties.reported.temp))", []string{"dev1", "dev2", "dev3", "edge1"}},
		{"power", "SELECT * FROM devices WHERE POWER(2, properties.desired.fanSpeed) = 32", []string{"edge1"}},
		{"exp", "SELECT * FROM devices WHERE EXP(0) = 1 AND deviceId = 'dev3'", []string{"dev3"}},
		{"as_number", "SELECT * FROM devices WHERE AS_NUMBER(SUBSTRING(properties.reported.fw, 0, 1)) = 2", []string{"edge1"}},
		{"is_string", "SELECT * FROM devices WHERE IS_STRING(properties.reported.fw)", []string{"dev1", "dev2", "dev3", "edge1"}},
		{"is_number", "SELECT * FROM devices WHERE IS_NUMBER(tags.site.floor)", []string{"dev1", "dev2", "dev3", "edge1"}},
		{"is_object", "SELECT * FROM devices WHERE IS_OBJECT(tags.site)", []string{"dev1", "dev2", "dev3", "dev4", "edge1"}},
		{"is_array", "SELECT * FROM devices WHERE IS_ARRAY(properties.reported.levels)", []string{"dev2"}},
		{"is_bool", "SELECT * FROM devices WHERE IS_BOOL(capabilities.iotEdge)", all},
		{"is_null", "SELECT * FROM devices WHERE IS_NULL(properties.reported.temp)", []string{"dev4"}},
		{"is_primitive", "SELECT * FROM devices WHERE IS_PRIMITIVE(properties.reported.temp) AND NOT IS_PRIMITIVE(tags)", all},
		{"status reason", "SELECT * FROM devices WHERE statusReason = 'decommissioned'", []string{"dev3"}},
		{"top", "SELECT TOP 2 * FROM devices", []string{"dev1", "dev2"}},
		{"top after where", "SELECT TOP 1 * FROM devices WHERE status = 'disabled' OR deviceId = 'dev5'", []string{"dev3"}},
		{"top zero", "SELECT TOP 0 * FROM devices", []string{}},
		{"whitespace and newlines", "SELECT *\n  FROM devices\n\tWHERE tags.site.building = 'B9'\n", []string{"dev3", "dev4"}},
	}
	fleet := loadFleet(t, "devices")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := mustParse(t, tt.query)
			if got := q.ItemType(); got != "Twin" {
				t.Errorf("ItemType() = %q, want Twin", got)
			}
			items, err := q.Execute(slices.Values(fleet))
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if diff := cmp.Diff(tt.want, ids(t, items)); diff != "" {
				t.Errorf("result ids (-want +got):\n%s", diff)
			}
			for _, it := range items {
				if !slices.ContainsFunc(fleet, func(d []byte) bool { return bytes.Equal(d, it) }) {
					t.Errorf("result item is not an input twin byte for byte: %.60s", it)
				}
			}
			// The decoded-map document must agree with the raw scanner.
			var viaMap []string
			for _, d := range fleet {
				if q.Match(decodeMap(t, d)) {
					viaMap = append(viaMap, ids(t, []json.RawMessage{d})[0])
				}
			}
			wantMap := tt.want
			if q.top >= 0 {
				wantMap = nil // TOP cuts Execute short, not Match
			}
			if wantMap != nil && !slices.Equal(viaMap, wantMap) && !(len(viaMap) == 0 && len(wantMap) == 0) {
				t.Errorf("MapDocument matches %v, want %v", viaMap, wantMap)
			}
		})
	}
}

// TestProjection covers SELECT lists, aggregates and GROUP BY; results are
// compared as exact JSON text, which pins key order and number spelling.
func TestProjection(t *testing.T) {
	tests := []struct {
		name  string
		fleet string
		query string
		want  string
	}{
		{"docs projection example", "devices",
			"SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
			`[{"deviceId":"dev2","lastActivityTime":"2024-05-01T18:00:00.0000000Z"},{"deviceId":"dev5","lastActivityTime":"0001-01-01T00:00:00Z"}]`},
		{"alias, object value, undefined left out", "devices",
			"SELECT deviceId AS id, tags.site AS site, properties.reported.fw FROM devices WHERE deviceId IN ['dev1', 'dev5']",
			`[{"id":"dev1","site":{"building":"B7","floor":3},"fw":"1.2.0"},{"id":"dev5"}]`},
		{"lower-case as", "devices",
			"SELECT deviceId as Id FROM devices WHERE deviceId = 'dev3'",
			`[{"Id":"dev3"}]`},
		{"metadata projection", "devices",
			"SELECT deviceId, properties.reported.$metadata.$lastUpdated FROM devices WHERE deviceId = 'dev1'",
			`[{"deviceId":"dev1","$lastUpdated":"2024-05-02T09:11:30.5000000Z"}]`},
		{"escaped string and array values", "devices",
			"SELECT properties.reported.location AS loc, properties.reported.levels AS lv, properties.reported.temp AS t FROM devices WHERE deviceId IN ['dev2', 'dev4', 'dev5']",
			`[{"lv":[1,2,3],"t":19},{"t":null},{"loc":"caf\u00e9 \"north\"","t":-3}]`},
		{"array element", "devices",
			"SELECT properties.reported.levels[2] FROM devices WHERE deviceId = 'dev2'",
			`[{"levels":3}]`},
		{"number text kept", "devices",
			"SELECT properties.reported.temp FROM devices WHERE deviceId = 'edge1'",
			`[{"temp":30.25}]`},
		{"projection with top", "devices",
			"SELECT TOP 1 deviceId FROM devices WHERE capabilities.iotEdge = false",
			`[{"deviceId":"dev1"}]`},
		{"count with alias", "devices",
			"SELECT COUNT() as totalNumberOfDevices FROM devices",
			`[{"totalNumberOfDevices":6}]`},
		{"count without alias", "devices",
			"SELECT COUNT() FROM devices WHERE status = 'enabled'",
			`[{"$1":5}]`},
		{"count over nothing", "devices",
			"SELECT COUNT() FROM devices WHERE deviceId = 'nope'",
			`[{"$1":0}]`},
		{"docs group by example", "devices",
			"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
			`[{"status":"Success","numberOfDevices":3},{"status":"Pending","numberOfDevices":2},{"status":"Error","numberOfDevices":1}]`},
		{"group by two paths, undefined group", "devices",
			"SELECT tags.site.building, status, COUNT() FROM devices GROUP BY tags.site.building, status",
			`[{"building":"B7","status":"enabled","$1":3},{"building":"B9","status":"disabled","$1":1},{"building":"B9","status":"enabled","$1":1},{"status":"enabled","$1":1}]`},
		{"group by without aggregate", "devices",
			"SELECT properties.reported.connectivity AS c FROM devices GROUP BY properties.reported.connectivity",
			`[{"c":"wifi"},{"c":"wired"},{"c":"cellular"},{}]`},
		{"group by with where and top", "devices",
			"SELECT TOP 1 tags.env AS env, COUNT() AS n FROM devices WHERE tags.env != 'test' GROUP BY tags.env",
			`[{"env":"prod","n":3}]`},
		{"sum avg min max", "devices",
			"SELECT SUM(properties.reported.temp) AS s, AVG(properties.reported.temp) AS a, MIN(properties.reported.temp) AS lo, MAX(properties.reported.temp) AS hi FROM devices",
			`[{"s":92.75,"a":18.55,"lo":-3,"hi":30.25}]`},
		{"min max strings, unnamed aggregates", "devices",
			"SELECT MIN(properties.reported.fw), MAX(properties.reported.fw), COUNT() FROM devices",
			`[{"$1":"1.1.0","$2":"2.0.0","$3":6}]`},
		{"aggregates over nothing", "devices",
			"SELECT SUM(properties.reported.temp) AS s, AVG(properties.reported.temp) AS a, MAX(deviceId) AS m FROM devices WHERE deviceId = 'nope'",
			`[{"s":0}]`},
		{"grouped sum", "devices",
			"SELECT tags.site.building AS b, SUM(properties.desired.fanSpeed) AS f FROM devices GROUP BY tags.site.building",
			`[{"b":"B7","f":10},{"b":"B9","f":0},{"f":0}]`},
		{"group by object value", "devices",
			"SELECT capabilities, COUNT() AS n FROM devices GROUP BY capabilities",
			`[{"capabilities":{"iotEdge":false},"n":5},{"capabilities":{"iotEdge":true},"n":1}]`},
		{"module projection", "modules",
			"SELECT deviceId, moduleId FROM devices.modules WHERE moduleId = '$edgeAgent'",
			`[{"deviceId":"edge1","moduleId":"$edgeAgent"}]`},
		{"module group by", "modules",
			"SELECT properties.reported.status AS s, COUNT() AS n FROM devices.modules GROUP BY properties.reported.status",
			`[{"s":"scanning","n":3},{"s":"idle","n":1}]`},
		{"module collection prefix", "modules",
			"SELECT devices.modules.moduleId FROM devices.modules WHERE devices.modules.deviceId = 'dev2'",
			`[{"moduleId":"modA"}]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := mustParse(t, tt.query)
			if got := q.ItemType(); got != "Raw" {
				t.Errorf("ItemType() = %q, want Raw", got)
			}
			items, err := q.Execute(slices.Values(loadFleet(t, tt.fleet)))
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			got, err := json.Marshal(items)
			if err != nil {
				t.Fatalf("result is not JSON: %v", err)
			}
			var want bytes.Buffer
			if err := json.Compact(&want, []byte(tt.want)); err != nil {
				t.Fatal(err)
			}
			if string(got) != want.String() {
				t.Errorf("got  %s\nwant %s", got, want.String())
			}
		})
	}
}

func TestModulesAndJobs(t *testing.T) {
	tests := []struct {
		name     string
		fleet    string
		query    string
		wantType string
		want     []string
	}{
		{"all modules", "modules", "SELECT * FROM devices.modules", "Twin",
			[]string{"dev1/modA", "dev1/modB", "edge1/$edgeAgent", "dev2/modA"}},
		{"module status", "modules", "SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning'", "Twin",
			[]string{"dev1/modA", "edge1/$edgeAgent", "dev2/modA"}},
		{"module status on some devices", "modules",
			"Select * from devices.modules where properties.reported.status = 'scanning' and deviceId IN ['dev1', 'dev2']", "Twin",
			[]string{"dev1/modA", "dev2/modA"}},
		{"module tags", "modules", "SELECT * FROM devices.modules WHERE tags.role = 'scanner' AND properties.reported.progress > 10", "Twin",
			[]string{"dev1/modA"}},
		{"jobs for a device", "jobs", "SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'dev1'", "DeviceJob",
			[]string{"dev1:reboot-b7", "dev1:fan-up"}},
		{"jobs by type, status and time", "jobs",
			"SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'dev1' AND devices.jobs.jobType = 'scheduleUpdateTwin' AND devices.jobs.status = 'completed' AND devices.jobs.createdDateTimeUtc > '2024-05-03'", "DeviceJob",
			[]string{"dev1:fan-up"}},
		{"job outcome", "jobs", "SELECT * FROM devices.jobs WHERE devices.jobs.outcome.deviceMethodResponse.status = 200", "DeviceJob",
			[]string{"dev1:reboot-b7"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := mustParse(t, tt.query)
			if got := q.ItemType(); got != tt.wantType {
				t.Errorf("ItemType() = %q, want %q", got, tt.wantType)
			}
			items, err := q.Execute(slices.Values(loadFleet(t, tt.fleet)))
			if err != nil {
				t.Fatalf("Execute: %v", err)
			}
			if diff := cmp.Diff(tt.want, ids(t, items)); diff != "" {
				t.Errorf("result ids (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCollection(t *testing.T) {
	tests := []struct {
		query string
		want  string
	}{
		{"SELECT * FROM devices", CollectionDevices},
		{"SELECT * FROM DEVICES.Modules", CollectionModules},
		{"SELECT * FROM devices.jobs", CollectionJobs},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			if got := mustParse(t, tt.query).Collection(); got != tt.want {
				t.Errorf("Collection() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseCondition(t *testing.T) {
	tests := []struct {
		name string
		cond string
		want []string
	}{
		{"job condition", "tags.site.building = 'B7'", []string{"dev1", "dev2", "edge1"}},
		{"device id list", "deviceId IN ['dev3', 'dev4']", []string{"dev3", "dev4"}},
		{"function and prefix", "STARTSWITH(devices.deviceId, 'edge') OR properties.reported.temp < 0", []string{"dev5", "edge1"}},
	}
	fleet := loadFleet(t, "devices")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseCondition(tt.cond)
			if err != nil {
				t.Fatalf("ParseCondition: %v", err)
			}
			if c.String() != tt.cond {
				t.Errorf("String() = %q, want %q", c.String(), tt.cond)
			}
			got := []string{}
			for _, d := range fleet {
				raw := c.Match(RawDocument(d))
				if m := c.Match(decodeMap(t, d)); m != raw {
					t.Errorf("MapDocument match %v, RawDocument match %v", m, raw)
				}
				if raw {
					got = append(got, ids(t, []json.RawMessage{d})[0])
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("matches (-want +got):\n%s", diff)
			}
		})
	}
}

func TestExecuteRejectsNonObject(t *testing.T) {
	q := mustParse(t, "SELECT * FROM devices")
	_, err := q.Execute(slices.Values([][]byte{[]byte(`{"deviceId":"a"}`), []byte(`[1]`)}))
	if err == nil || err.Error() != "query: document 1 is not a JSON object" {
		t.Errorf("got error %v, want document 1 is not a JSON object", err)
	}
}

// TestExecuteDoesNotAlias checks that results survive the caller reusing
// its buffers, as a bbolt cursor's memory does not outlive its transaction.
func TestExecuteDoesNotAlias(t *testing.T) {
	tests := []string{
		"SELECT * FROM devices",
		"SELECT deviceId, tags FROM devices",
		"SELECT tags.site.building AS b, MAX(properties.reported.fw) AS fw FROM devices GROUP BY tags.site.building",
	}
	for _, query := range tests {
		t.Run(query, func(t *testing.T) {
			q := mustParse(t, query)
			fleet := loadFleet(t, "devices")
			want, err := q.Execute(slices.Values(fleet))
			if err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 0, 4096)
			got, err := q.Execute(func(yield func([]byte) bool) {
				for _, d := range fleet {
					buf = append(buf[:0], d...)
					if !yield(buf) {
						return
					}
				}
				clear(buf[:cap(buf)])
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("results changed with a reused buffer (-want +got):\n%s", diff)
			}
		})
	}
}
