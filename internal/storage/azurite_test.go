// SPDX-License-Identifier: MIT

package storage_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/iothubemulator/iothub/internal/azurite"
	"github.com/iothubemulator/iothub/internal/storage"
)

// These tests prove the signatures against Azurite, which checks them the
// way Azure Storage does.

func TestSignaturesAgainstAzurite(t *testing.T) {
	az := azurite.Start(t)
	ctx := context.Background()
	c := az.Storage()
	a := az.Account
	az.CreateContainer(t, "sigs")
	hour := time.Now().Add(time.Hour)

	t.Run("blob SAS with create and write uploads", func(t *testing.T) {
		name := "dev 1/ü#report.txt"
		u := a.BlobURL("sigs", name) + "?" + a.BlobSAS("sigs", name, "cw", time.Now().Add(-time.Minute), hour)
		if err := c.PutBlob(ctx, u, strings.NewReader("hello"), 5, "text/plain"); err != nil {
			t.Fatal(err)
		}
		if got := az.ReadBlob(t, "sigs", name); string(got) != "hello" {
			t.Fatalf("got %q", got)
		}
		ru := a.BlobURL("sigs", name) + "?" + a.BlobSAS("sigs", name, "r", time.Time{}, hour)
		p, err := c.GetProperties(ctx, ru)
		if err != nil {
			t.Fatal(err)
		}
		if p.Size != 5 || p.LastModified.IsZero() || p.ETag == "" {
			t.Errorf("properties %+v", p)
		}
	})
	t.Run("blob SAS without write is refused", func(t *testing.T) {
		u := a.BlobURL("sigs", "x") + "?" + a.BlobSAS("sigs", "x", "r", time.Time{}, hour)
		err := c.PutBlob(ctx, u, strings.NewReader("x"), 1, "")
		assertStatus(t, err, http.StatusForbidden)
	})
	t.Run("blob SAS for another blob is refused", func(t *testing.T) {
		u := a.BlobURL("sigs", "x") + "?" + a.BlobSAS("sigs", "y", "cw", time.Time{}, hour)
		assertStatus(t, c.PutBlob(ctx, u, strings.NewReader("x"), 1, ""), http.StatusForbidden)
	})
	t.Run("expired SAS is refused", func(t *testing.T) {
		u := a.BlobURL("sigs", "x") + "?" + a.BlobSAS("sigs", "x", "cw", time.Time{}, time.Now().Add(-time.Minute))
		assertStatus(t, c.PutBlob(ctx, u, strings.NewReader("x"), 1, ""), http.StatusForbidden)
	})
	t.Run("wrong key is refused", func(t *testing.T) {
		bad := *a
		bad.Key = []byte("not the key")
		u := a.BlobURL("sigs", "x") + "?" + bad.BlobSAS("sigs", "x", "cw", time.Time{}, hour)
		err := c.PutBlob(ctx, u, strings.NewReader("x"), 1, "")
		assertStatus(t, err, http.StatusForbidden)
		// Azure says AuthenticationFailed, Azurite AuthorizationFailure.
		if !storage.IsCode(err, "AuthenticationFailed") && !storage.IsCode(err, "AuthorizationFailure") {
			t.Errorf("got %v, want an authentication failure", err)
		}
		if strings.Contains(err.Error(), "sig=") {
			t.Errorf("error leaks the signature: %v", err)
		}
	})
	t.Run("container SAS reads and writes any blob, blocks commit in order", func(t *testing.T) {
		cu := az.ContainerSASURL("sigs", "rw")
		bu, err := storage.ContainerBlobURL(cu, "big/blocks.bin")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		var want bytes.Buffer
		for i := 0; i < 3; i++ {
			part := bytes.Repeat([]byte{byte('a' + i)}, 1000+i)
			want.Write(part)
			ids = append(ids, storage.BlockID(i))
			if err := c.PutBlock(ctx, bu, ids[i], part); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.PutBlockList(ctx, bu, ids, "application/octet-stream"); err != nil {
			t.Fatal(err)
		}
		rc, err := c.GetBlob(ctx, bu)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("got %d bytes, want %d", len(got), want.Len())
		}
	})
	t.Run("missing blob and container", func(t *testing.T) {
		_, err := c.GetProperties(ctx, a.BlobURL("sigs", "none")+"?"+a.BlobSAS("sigs", "none", "r", time.Time{}, hour))
		assertStatus(t, err, http.StatusNotFound)
		_, err = c.GetBlob(ctx, a.BlobURL("nocontainer", "none")+"?"+a.BlobSAS("nocontainer", "none", "r", time.Time{}, hour))
		assertStatus(t, err, http.StatusNotFound)
	})
	t.Run("account SAS creates a container, twice", func(t *testing.T) {
		sas := a.AccountSAS("rwc", "sco", time.Time{}, hour)
		for i := 0; i < 2; i++ {
			if err := c.CreateContainer(ctx, a.ContainerURL("made")+"?"+sas); err != nil {
				t.Fatal(err)
			}
		}
		bad := *a
		bad.Key, _ = base64.StdEncoding.DecodeString("a2V5")
		err := c.CreateContainer(ctx, a.ContainerURL("other")+"?"+bad.AccountSAS("rwc", "sco", time.Time{}, hour))
		assertStatus(t, err, http.StatusForbidden)
	})
	t.Run("storage down", func(t *testing.T) {
		az2 := azurite.Start(t)
		u := az2.ContainerSASURL("c", "rw")
		az2.Stop()
		bu, _ := storage.ContainerBlobURL(u, "x")
		err := az2.Storage().PutBlob(ctx, bu, strings.NewReader("x"), 1, "")
		if err == nil || !strings.Contains(err.Error(), "connect") || strings.Contains(err.Error(), "sig=") {
			t.Fatalf("got %v, want a connection error without the signature", err)
		}
	})
}

func assertStatus(t *testing.T, err error, status int) {
	t.Helper()
	var se *storage.Error
	if !asError(err, &se) || se.StatusCode != status {
		t.Fatalf("got %v, want a storage error with status %d", err, status)
	}
}

func asError(err error, target **storage.Error) bool {
	for err != nil {
		if e, ok := err.(*storage.Error); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
