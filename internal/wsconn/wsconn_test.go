// SPDX-License-Identifier: MIT

package wsconn

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// pair returns a client Conn and the raw server-side WebSocket.
func pair(t *testing.T) (*Conn, *websocket.Conn) {
	t.Helper()
	server := make(chan *websocket.Conn, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			t.Errorf("upgrade: %v", err)
			return
		}
		server <- ws
	}))
	t.Cleanup(srv.Close)
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	s := <-server
	t.Cleanup(func() { _ = ws.Close(); _ = s.Close() })
	return New(ws), s
}

func TestReadSpansMessages(t *testing.T) {
	c, s := pair(t)
	for _, m := range []string{"ab", "", "cde", "f"} {
		if err := s.WriteMessage(websocket.BinaryMessage, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]byte, 6)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatalf("ReadFull: %v", err)
	}
	if string(got) != "abcdef" {
		t.Errorf("read %q, want %q", got, "abcdef")
	}
}

func TestWriteIsOneBinaryMessage(t *testing.T) {
	c, s := pair(t)
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if n, err := c.Write([]byte("hello")); n != 5 || err != nil {
		t.Fatalf("Write = %d, %v, want 5, nil", n, err)
	}
	kind, p, err := s.ReadMessage()
	if err != nil || kind != websocket.BinaryMessage || !bytes.Equal(p, []byte("hello")) {
		t.Errorf("server read %d %q %v, want binary \"hello\"", kind, p, err)
	}
}

func TestTextFrameRejected(t *testing.T) {
	c, s := pair(t)
	if err := s.WriteMessage(websocket.TextMessage, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Read(make([]byte, 4)); !errors.Is(err, ErrTextFrame) {
		t.Errorf("Read = %v, want ErrTextFrame", err)
	}
}
