// SPDX-License-Identifier: MIT

package sas

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// GenerateKey returns a new random symmetric key: 32 bytes in standard
// base64, the size the hub generates for devices and policies.
func GenerateKey() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // crypto/rand.Read never fails since Go 1.24
	return base64.StdEncoding.EncodeToString(b)
}

// decodeKey decodes a base64 shared access key. Unpadded keys are accepted
// because Node's Buffer.from(key, "base64") accepts them too.
func decodeKey(base64Key string) ([]byte, error) {
	if base64Key == "" {
		return nil, errors.New("sas: empty key")
	}
	k, err := base64.StdEncoding.DecodeString(base64Key)
	if err != nil {
		k, err = base64.RawStdEncoding.DecodeString(base64Key)
	}
	if err != nil {
		return nil, errors.New("sas: key is not valid base64")
	}
	return k, nil
}

// sign returns base64(HMAC-SHA256(key, stringToSign)).
func sign(key []byte, stringToSign string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(stringToSign))
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}
