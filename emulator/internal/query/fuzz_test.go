// SPDX-License-Identifier: MIT

package query

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

// FuzzParseExecute feeds arbitrary text to Parse and runs what parses over
// a small fixed fleet: neither may panic or hang, errors must be *Error
// pointing into the text, and every result must be valid JSON.
func FuzzParseExecute(f *testing.F) {
	seeds := []string{
		"SELECT * FROM devices WHERE tags.site.building = 'B7' AND properties.reported.fanSpeed >= 2",
		"SELECT TOP 3 deviceId AS id, tags.site FROM devices WHERE NOT IS_DEFINED(properties.reported.fw)",
		"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS n FROM devices GROUP BY properties.reported.telemetryConfig.status",
		"SELECT SUM(properties.reported.temp), AVG(properties.reported.temp), MIN(deviceId), MAX(version) FROM devices",
		`SELECT * FROM devices.modules WHERE moduleId IN ['modA', "$edgeAgent"] OR STARTSWITH(deviceId, '\u0065')`,
		"SELECT * FROM devices WHERE CONCAT(deviceId, 'x') = 'dev1x' AND SUBSTRING(deviceId, -1, 99) != '' OR 0x1F % 3 = 1",
		"SELECT * FROM devices WHERE properties.reported.levels[0] IN properties.reported.levels",
		"SELECT * FROM devices WHERE ((-(1)) * 2) / 0 = undefined OR null = null",
		"select * from devices.jobs where devices.jobs.status = 'completed'",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	fleet := loadFleet(f, "devices")
	fleet = append(fleet, loadFleet(f, "modules")...)
	f.Fuzz(func(t *testing.T, text string) {
		q, err := Parse(text)
		if err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				t.Fatalf("error %T is not an *Error", err)
			}
			if perr.Pos < 0 || perr.Pos > len(text) {
				t.Fatalf("error position %d outside the text (length %d)", perr.Pos, len(text))
			}
			return
		}
		items, err := q.Execute(slices.Values(fleet))
		if err != nil {
			t.Fatalf("Execute: %v", err)
		}
		for _, it := range items {
			if !json.Valid(it) {
				t.Fatalf("invalid JSON result %q", it)
			}
		}
		for _, d := range fleet {
			q.Match(decodeMap(t, d))
		}
		if c, err := ParseCondition(text); err == nil {
			c.Match(RawDocument(fleet[0]))
		}
	})
}
