// SPDX-License-Identifier: MIT

package provisioning_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/iothubemulator/iothub/emulator"
	"github.com/iothubemulator/iothub/provisioning"
)

// The usual flow against the real service: register with the enrollment
// group's derived key, then connect to the assigned hub with the result.
func Example() {
	ctx := context.Background()
	key, err := provisioning.DeriveDeviceKey(os.Getenv("DPS_GROUP_KEY"), "sensor-42")
	if err != nil {
		log.Fatal(err)
	}
	c, err := provisioning.NewFromSymmetricKey(provisioning.GlobalEndpoint, os.Getenv("DPS_ID_SCOPE"), "sensor-42", key)
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Register(ctx)
	if err != nil {
		log.Fatal(err)
	}
	dc, err := res.NewDeviceClient()
	if err != nil {
		log.Fatal(err)
	}
	defer dc.Close()
	if err := dc.Connect(ctx); err != nil {
		log.Fatal(err)
	}
}

// Against the in-process emulator: enroll through its direct API, register
// over HTTPS with the emulator's host and CA, and read the assignment.
func ExampleClient_Register() {
	srv, err := emulator.New(emulator.Options{InMemory: true, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	out, err := srv.PutEnrollment([]byte(`{"registrationId":"thermostat-1","attestation":{"type":"symmetricKey"}}`))
	if err != nil {
		log.Fatal(err)
	}
	var e struct {
		Attestation struct {
			SymmetricKey struct{ PrimaryKey string } `json:"symmetricKey"`
		} `json:"attestation"`
	}
	_ = json.Unmarshal(out, &e)
	c, err := provisioning.NewFromSymmetricKey(srv.ProvisioningHost(), srv.IDScope(), "thermostat-1", e.Attestation.SymmetricKey.PrimaryKey,
		provisioning.WithTransport(provisioning.HTTPS), provisioning.WithRootCAs(srv.CAPool()))
	if err != nil {
		log.Fatal(err)
	}
	res, err := c.Register(context.Background())
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Status, res.RegistrationState.DeviceID, res.RegistrationState.Substatus)
	// Output: assigned thermostat-1 initialAssignment
}

// Refusals are *provisioning.Error values: errors.Is matches the sentinels
// and errors.As reads the service's errorCode.
func ExampleError() {
	srv, err := emulator.New(emulator.Options{InMemory: true, MQTTAddr: "127.0.0.1:0", HTTPSAddr: "127.0.0.1:0"})
	if err != nil {
		log.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	c, _ := provisioning.NewFromSymmetricKey(srv.ProvisioningHost(), srv.IDScope(), "never-enrolled", "c2VjcmV0LWtleS1vZi1ub2JvZHktYXQtYWxs",
		provisioning.WithTransport(provisioning.HTTPS), provisioning.WithRootCAs(srv.CAPool()))
	_, err = c.Register(context.Background())
	var pe *provisioning.Error
	if errors.As(err, &pe) {
		fmt.Println(errors.Is(err, provisioning.ErrUnauthorized), pe.StatusCode, pe.Code)
	}
	// Output: true 401 401002
}
