// SPDX-License-Identifier: MIT

package store

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func openT(t *testing.T, path string) *DB {
	t.Helper()
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return db
}

func TestReopenKeepsData(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	db := openT(t, path)
	if err := db.Update(func(tx *Tx) error { return tx.Put(Devices, "dev1", []byte("one")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openT(t, path)
	defer db.Close()
	var got []byte
	db.View(func(tx *Tx) error { got = tx.Get(Devices, "dev1"); return nil })
	if string(got) != "one" {
		t.Fatalf("got %q, want %q", got, "one")
	}
}

// TestFailedUpdateIsIsolated checks the group commit: an update that fails
// leaves no partial writes, and updates grouped with it still commit.
func TestFailedUpdateIsIsolated(t *testing.T) {
	db := openT(t, filepath.Join(t.TempDir(), "hub.db"))
	defer db.Close()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 50)
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = db.Update(func(tx *Tx) error {
				if err := tx.Put(Devices, fmt.Sprintf("k%02d", i), []byte("v")); err != nil {
					return err
				}
				if i%5 == 0 {
					return boom
				}
				return nil
			})
		}()
	}
	wg.Wait()
	db.View(func(tx *Tx) error {
		for i := range 50 {
			present := tx.Get(Devices, fmt.Sprintf("k%02d", i)) != nil
			if i%5 == 0 {
				if !errors.Is(errs[i], boom) {
					t.Errorf("update %d: got err %v, want boom", i, errs[i])
				}
				if present {
					t.Errorf("update %d failed but its write is present", i)
				}
			} else if errs[i] != nil || !present {
				t.Errorf("update %d: err %v, present %v; want nil, true", i, errs[i], present)
			}
		}
		return nil
	})
}

func TestPanicInUpdateIsAnError(t *testing.T) {
	db := openT(t, filepath.Join(t.TempDir(), "hub.db"))
	defer db.Close()
	err := db.Update(func(tx *Tx) error { panic("bad") })
	if err == nil || !strings.Contains(err.Error(), "panicked") {
		t.Fatalf("got %v, want a panic error", err)
	}
	if err := db.Update(func(tx *Tx) error { return tx.Put(Meta, "x", []byte("1")) }); err != nil {
		t.Fatalf("store unusable after a panic: %v", err)
	}
}

func TestForEachPrefixAndStart(t *testing.T) {
	db := openT(t, filepath.Join(t.TempDir(), "hub.db"))
	defer db.Close()
	db.Update(func(tx *Tx) error {
		for _, k := range []string{"a\x00m1", "a\x00m2", "a\x00m3", "ab\x00m1", "b"} {
			tx.Put(Modules, k, []byte(k))
		}
		return nil
	})
	var got []string
	db.View(func(tx *Tx) error {
		return tx.ForEach(Modules, "a\x00", "a\x00m2", func(k string, v []byte) error {
			got = append(got, k)
			return nil
		})
	})
	want := []string{"a\x00m2", "a\x00m3"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// TestMain doubles as the child process of the multi-process tests: bbolt's
// file lock and a SIGKILL need a second process.
func TestMain(m *testing.M) {
	switch {
	case os.Getenv("STORE_LOCK_PATH") != "":
		lockChild(os.Getenv("STORE_LOCK_PATH"))
	case os.Getenv("STORE_KILL_PATH") != "":
		killWriterChild(os.Getenv("STORE_KILL_PATH"))
	default:
		os.Exit(m.Run())
	}
}

func TestLockedDatabaseFailsFast(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	db := openT(t, path)
	defer db.Close()
	// bbolt's lock is per process (flock), so the second opener must be another process.
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "STORE_LOCK_PATH="+path)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "LOCKED:") || !strings.Contains(string(out), "another --data-dir") {
		t.Fatalf("helper did not report a lock error:\n%s", out)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("locked open took %v; it must fail fast", d)
	}
}

func lockChild(path string) {
	_, err := Open(path, Options{LockTimeout: 200 * time.Millisecond})
	if !errors.Is(err, ErrLocked) {
		fmt.Printf("got %v, want ErrLocked\n", err)
		os.Exit(1)
	}
	fmt.Println("LOCKED:", err)
	os.Exit(0)
}

func TestCorruptFileIsAClearError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	if err := os.WriteFile(path, []byte(strings.Repeat("not a database ", 2000)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path, Options{})
	if err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("got %v, want a 'corrupt' error", err)
	}
}

// TestKillLosesNothingAcknowledged runs a writer in a child process, kills
// it with SIGKILL in the middle of writing, and checks that every write the
// child saw acknowledged is in the file.
func TestKillLosesNothingAcknowledged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "STORE_KILL_PATH="+path)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		if k, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
			acked[k] = true
			if len(acked) == 300 {
				cmd.Process.Signal(syscall.SIGKILL)
				break
			}
		}
	}
	// Acks already in the pipe were also acknowledged.
	for sc.Scan() {
		if k, ok := strings.CutPrefix(sc.Text(), "ACK "); ok {
			acked[k] = true
		}
	}
	cmd.Wait()
	if len(acked) < 300 {
		t.Fatalf("child acknowledged only %d writes before exiting", len(acked))
	}
	db := openT(t, path)
	defer db.Close()
	db.View(func(tx *Tx) error {
		for k := range acked {
			if tx.Get(Devices, k) == nil {
				t.Errorf("acknowledged key %s is missing after SIGKILL", k)
			}
		}
		return nil
	})
}

func killWriterChild(path string) {
	db, err := Open(path, Options{})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(1)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				k := fmt.Sprintf("w%d-%06d", w, i)
				if err := db.Update(func(tx *Tx) error { return tx.Put(Devices, k, []byte(strings.Repeat("x", 512))) }); err != nil {
					return
				}
				mu.Lock()
				fmt.Println("ACK", k)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	os.Exit(0)
}

func BenchmarkUpdate(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "hub.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	val := []byte(strings.Repeat("x", 512))
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			k := fmt.Sprintf("%p-%d", pb, i)
			if err := db.Update(func(tx *Tx) error { return tx.Put(Devices, k, val) }); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// TestUpdateRacingClose: updates that race with Close either commit or
// fail with ErrClosed; none panics or hangs, and every one that reported
// success is in the file afterwards.
func TestUpdateRacingClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hub.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = db.Update(func(tx *Tx) error { return tx.Put(Devices, fmt.Sprint(i), []byte("x")) })
		}()
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if err := db.Update(func(*Tx) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("update after Close: got %v, want ErrClosed", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	err = db.View(func(tx *Tx) error {
		for i, r := range results {
			switch {
			case r == nil && tx.Get(Devices, fmt.Sprint(i)) == nil:
				t.Errorf("update %d reported success but is not in the file", i)
			case r != nil && !errors.Is(r, ErrClosed):
				t.Errorf("update %d racing Close: got %v, want nil or ErrClosed", i, r)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestLast(t *testing.T) {
	db, err := OpenTemp()
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys := []string{"\x00a", "\x00b", "\x01a", "\x01\xff", "\x01\xff\xff", "\xff", "\xff\xff"}
	err = db.Update(func(tx *Tx) error {
		for _, k := range keys {
			if err := tx.Put(Meta, k, []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ prefix, want string }{
		{"\x00", "\x00b"},
		{"\x01", "\x01\xff\xff"},
		{"\x01\xff", "\x01\xff\xff"},
		{"\x02", ""},
		{"\xff", "\xff\xff"},
		{"", "\xff\xff"},
	} {
		db.View(func(tx *Tx) error {
			k, v := tx.Last(Meta, tc.prefix)
			if k != tc.want || (k != "" && string(v) != "v"+k) {
				t.Errorf("Last(%q): got %q=%q, want %q", tc.prefix, k, v, tc.want)
			}
			return nil
		})
	}
}

// TestOnCommitRunsOnlyAfterCommit checks that a commit hook runs once the
// update is durable (a View inside it sees the write), and that an update
// rolled back with its group runs no hook of the failed attempt.
func TestOnCommitRunsOnlyAfterCommit(t *testing.T) {
	db := openT(t, filepath.Join(t.TempDir(), "hub.db"))
	defer db.Close()
	var seen []byte
	hooks := 0
	err := db.Update(func(tx *Tx) error {
		tx.OnCommit(func() {
			hooks++
			_ = db.View(func(tx *Tx) error { seen = tx.Get(Devices, "k"); return nil })
		})
		return tx.Put(Devices, "k", []byte("v"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if hooks != 1 || string(seen) != "v" {
		t.Fatalf("hook ran %d times and saw %q; want once, seeing %q", hooks, seen, "v")
	}
	boom := errors.New("boom")
	failedHooks := 0
	err = db.Update(func(tx *Tx) error {
		tx.OnCommit(func() { failedHooks++ })
		return boom
	})
	if !errors.Is(err, boom) || failedHooks != 0 {
		t.Fatalf("failed update: err %v, %d hooks; want boom and none", err, failedHooks)
	}
}
