package intercepts

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/key-ip-sentinel/sentinel/admind/internal/bindings"
	"github.com/key-ip-sentinel/sentinel/admind/internal/contract"
	"github.com/key-ip-sentinel/sentinel/internal/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

type memWriter struct {
	mu   sync.Mutex
	rows map[string]int // by path: each event carries a unique path
}

func (w *memWriter) InsertIntercepts(_ context.Context, list []bindings.Intercept) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, ic := range list {
		w.rows[ic.Path]++
	}
	return nil
}

func (w *memWriter) count() (distinct, total int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, n := range w.rows {
		distinct++
		total += n
	}
	return
}

const hash = "cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd"

func addEvents(t *testing.T, rdb *redis.Client, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		err := rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: contract.EventsStream, Values: []string{
			"key_hash", hash, "key_hint", "sk-…", "ip", "127.0.0.3", "reason", "ip_not_allowed", "path", "/e/" + strconv.Itoa(i),
		}}).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func consumer(rdb *redis.Client, w Writer, name string) *Consumer {
	return &Consumer{RDB: rdb, Store: w, Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Name: name,
		Batch: 50, Block: 100 * time.Millisecond, MinIdle: 300 * time.Millisecond, Interval: 50 * time.Millisecond}
}

// Two replicas share the stream: every event is written exactly once.
func TestConsumersShareTheStream(t *testing.T) {
	rdb := testenv.Redis(t).Client(t)
	w := &memWriter{rows: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, name := range []string{"admind-1", "admind-2"} {
		c := consumer(rdb, w, name)
		wg.Add(1)
		go func() { defer wg.Done(); c.Run(ctx) }()
	}
	for i := 0; i < 10; i++ {
		addEvents(t, rdb, i*200, 200)
	}
	testenv.WaitFor(t, 20*time.Second, "2000 events written and removed from the stream", func() bool {
		d, _ := w.count()
		return d == 2000 && rdb.XLen(context.Background(), contract.EventsStream).Val() == 0
	})
	cancel()
	wg.Wait()
	if d, total := w.count(); d != 2000 || total != 2000 {
		t.Fatalf("%d distinct events written %d times", d, total)
	}
}

// A replica that read events and died before writing them loses nothing: another replica
// claims them once they have been idle for MinIdle.
func TestDeadConsumersEventsAreClaimed(t *testing.T) {
	rdb := testenv.Redis(t).Client(t)
	ctx := context.Background()
	if err := consumer(rdb, nil, "x").ensureGroup(ctx); err != nil {
		t.Fatal(err)
	}
	addEvents(t, rdb, 0, 30)
	// "dead" reads everything and never acknowledges.
	if err := rdb.XReadGroup(ctx, &redis.XReadGroupArgs{Group: Group, Consumer: "dead", Streams: []string{contract.EventsStream, ">"}, Count: 100}).Err(); err != nil {
		t.Fatal(err)
	}
	w := &memWriter{rows: map[string]int{}}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { consumer(rdb, w, "alive").Run(runCtx); close(done) }()
	testenv.WaitFor(t, 10*time.Second, "the dead consumer's 30 events written", func() bool { d, _ := w.count(); return d == 30 })
	cancel()
	<-done
	if pending := rdb.XPending(ctx, contract.EventsStream, Group).Val(); pending.Count != 0 {
		t.Fatalf("%d events still pending", pending.Count)
	}
}

// Failsafe reports from the plugin go to OnFailsafe, summed per batch, not to the log table.
func TestFailsafeReports(t *testing.T) {
	rdb := testenv.Redis(t).Client(t)
	ctx := context.Background()
	for _, v := range [][]string{{"type", "failsafe", "open", "3", "closed", "0"}, {"type", "failsafe", "open", "1", "closed", "2", "rejected", "5", "hidden", "7"}} {
		rdb.XAdd(ctx, &redis.XAddArgs{Stream: contract.EventsStream, Values: v})
	}
	w := &memWriter{rows: map[string]int{}}
	c := consumer(rdb, w, "one")
	var mu sync.Mutex
	var fwd, ref, rej, hid int64
	c.OnFailsafe = func(_ context.Context, f, r int64) { mu.Lock(); fwd += f; ref += r; mu.Unlock() }
	c.OnRejected = func(n int64) { mu.Lock(); rej += n; mu.Unlock() }
	c.OnHiddenClient = func(n int64) { mu.Lock(); hid += n; mu.Unlock() }
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { c.Run(runCtx); close(done) }()
	testenv.WaitFor(t, 10*time.Second, "failsafe reports", func() bool { mu.Lock(); defer mu.Unlock(); return fwd == 4 && ref == 2 && rej == 5 && hid == 7 })
	cancel()
	<-done
	if d, _ := w.count(); d != 0 {
		t.Fatalf("failsafe reports written as intercepts: %d", d)
	}
}

// refusingWriter refuses, as PostgreSQL would refuse a statement, every batch holding a path
// in refuse, and is unreachable while down is set.
type refusingWriter struct {
	memWriter
	refuse map[string]bool
	down   bool
}

var errRefused, errDown = errors.New("refused by the server"), errors.New("connection refused")

func (w *refusingWriter) InsertIntercepts(ctx context.Context, list []bindings.Intercept) error {
	if w.down {
		return errDown
	}
	for _, ic := range list {
		if w.refuse[ic.Path] {
			return errRefused
		}
	}
	return w.memWriter.InsertIntercepts(ctx, list)
}

// A batch the database refuses is written row by row; only the rows it refuses alone are
// dropped (and counted). A database that cannot be reached drops nothing.
func TestRefusedRowsAreDroppedAlone(t *testing.T) {
	rdb := testenv.Redis(t).Client(t)
	addEvents(t, rdb, 0, 10)
	w := &refusingWriter{memWriter: memWriter{rows: map[string]int{}}, refuse: map[string]bool{"/e/3": true, "/e/7": true}}
	c := consumer(rdb, w, "one")
	c.BadRow = func(err error) bool { return errors.Is(err, errRefused) }
	var mu sync.Mutex
	dropped := 0
	c.OnDropped = func(n int) { mu.Lock(); dropped += n; mu.Unlock() }

	if err := c.ensureGroup(context.Background()); err != nil {
		t.Fatal(err)
	}
	w.down = true
	if _, err := c.drain(context.Background(), ">"); !errors.Is(err, errDown) {
		t.Fatalf("drain with the database down: %v", err)
	}
	if d, _ := w.count(); d != 0 || dropped != 0 {
		t.Fatalf("database down: %d rows, %d dropped", d, dropped)
	}
	w.down = false
	if _, err := c.drain(context.Background(), "0"); err != nil { // the pending entries, again
		t.Fatal(err)
	}
	if d, total := w.count(); d != 8 || total != 8 || dropped != 2 {
		t.Fatalf("%d distinct rows (%d in all), %d dropped; want 8, 8, 2", d, total, dropped)
	}
}
