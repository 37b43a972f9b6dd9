// SPDX-License-Identifier: MIT

package amqpapi

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want Address
	}{
		{"$cbs", Address{Node: NodeCBS}},
		{"/messages/devicebound", Address{Node: NodeC2D}},
		{"messages/deviceBound", Address{Node: NodeC2D}},
		{"amqps://myhub.azure-devices.net/messages/devicebound", Address{Node: NodeC2D}},
		{"/messages/serviceBound/feedback", Address{Node: NodeFeedback}},
		{"/messages/servicebound/filenotifications", Address{Node: NodeFileNotifications}},
		{"/messages/events/$management", Address{Node: NodeEventsRedirect}},
		{"amqps://myhub.azure-devices.net:5671/messages/events/ConsumerGroups/$Default/Partitions/0", Address{Node: NodeEventsRedirect}},
		{"myhub/$management", Address{Node: NodeEventHubManagement, EventHub: "myhub"}},
		{"$management", Address{Node: NodeEventHubManagement, EventHub: "myhub"}},
		{"sb://localhost:5672/MyHub/ConsumerGroups/$Default/Partitions/3", Address{Node: NodeEventHubPartition, EventHub: "MyHub", ConsumerGroup: "$Default", Partition: 3}},
		{"myhub/consumergroups/any group/partitions/0", Address{Node: NodeEventHubPartition, EventHub: "myhub", ConsumerGroup: "any group", Partition: 0}},
		{"/devices/dev1/messages/events", Address{Node: NodeDeviceEvents, DeviceID: "dev1"}},
		{"/devices/dev%2F1%20x/messages/events", Address{Node: NodeDeviceEvents, DeviceID: "dev/1 x"}},
		{"/devices/dev1/modules/m1/messages/events", Address{Node: NodeDeviceEvents, DeviceID: "dev1", ModuleID: "m1"}},
		{"/devices/dev1/messages/deviceBound", Address{Node: NodeDeviceC2D, DeviceID: "dev1"}},
		{"amqps://myhub.azure-devices.net/devices/dev1/methods/devicebound", Address{Node: NodeDeviceMethods, DeviceID: "dev1"}},
		{"/devices/dev1/modules/m1/methods/deviceBound", Address{Node: NodeDeviceMethods, DeviceID: "dev1", ModuleID: "m1"}},
		{"/devices/dev1/twin", Address{Node: NodeDeviceTwin, DeviceID: "dev1"}},
		{"/devices/dev1/modules/m1/twin", Address{Node: NodeDeviceTwin, DeviceID: "dev1", ModuleID: "m1"}},
		{"/devices/dev1/modules/m1/inputs", Address{Node: NodeModuleInputs, DeviceID: "dev1", ModuleID: "m1"}},
	} {
		got, err := ParseAddress(tc.addr, "myhub")
		if err != nil {
			t.Errorf("%s: %v", tc.addr, err)
			continue
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.addr, diff)
		}
	}
}

func TestParseAddressRefuses(t *testing.T) {
	for _, addr := range []string{
		"", "/", "amqps://host", "$cbsx", "/messages", "/messages/devicebound/x",
		"/messages/serviceBound", "/devices", "/devices/dev1", "/devices//messages/events",
		"/devices/dev1/modules//twin", "/devices/dev1/modules/m1/messages/devicebound",
		"/devices/dev1/inputs", "/devices/dev1/twin/x", "/devices/dev%ZZ/twin",
		"otherhub/$management", "myhub/ConsumerGroups/$Default/Partitions/x",
		"myhub/ConsumerGroups/$Default/Partitions/-1", "myhub/ConsumerGroups//Partitions/0",
		"myhub/Partitions/0",
	} {
		if got, err := ParseAddress(addr, "myhub"); !errors.Is(err, errAddress) {
			t.Errorf("%q: got %+v, %v; want errAddress", addr, got, err)
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"$cbs", "/devices/d/modules/m/twin", "sb://h:1/hub/ConsumerGroups/g/Partitions/1", "/messages/events/x", "%zz"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, addr string) {
		a, err := ParseAddress(addr, "hub")
		if err != nil {
			if !errors.Is(err, errAddress) {
				t.Fatalf("%q: error %v does not wrap errAddress", addr, err)
			}
			return
		}
		if a.Node == NodeUnknown {
			t.Fatalf("%q parsed to an unknown node without error", addr)
		}
		if a.Node >= NodeDeviceEvents && a.DeviceID == "" {
			t.Fatalf("%q: device node %v without a device id", addr, a.Node)
		}
	})
}
