// Command go_compare runs one workload against a dqlite node through database/sql and
// the go-dqlite driver, and prints one line of figures. It is the Go half of a
// side-by-side comparison: benchmarks/compare_client.cpp is its C++ twin (same
// arguments, same workloads, same output line) and benchmarks/compare_go.sh runs both.
//
//	go_compare --address 127.0.0.1:9001 --workload point [--seconds 5 | --ops N] [--database bench]
//
// Workloads (the tables are made by `compare_client --workload setup`):
//
//	point     SELECT v FROM kv WHERE k = ? with a random key, by SQL text, one connection
//	prepared  the same through a *sql.Stmt prepared once
//	bulk      SELECT id, name, value, count FROM bulk (100000 rows) scanned into a
//	          slice of structs; one op is one whole result
//	pool8     8 goroutines doing point SELECTs through a pool of 8 connections
//
// The output line is
//
//	client=go workload=point threads=2 ops=123456 elapsed_s=5.000012 cpu_s=3.210000
//
// threads is GOMAXPROCS; cpu_s is this process's user + system time (getrusage) over the
// measured part only, garbage collection included. Connections are opened and warmed up
// before the clock starts. It is built in GOPATH mode against Debian's packaged
// sources (golang-github-canonical-go-dqlite-dev), offline; see compare_go.sh.
package main

import (
	"context"
	"database/sql"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/canonical/go-dqlite/client"
	"github.com/canonical/go-dqlite/driver"
)

const (
	kvRows   = 1000   // rows of table kv
	bulkRows = 100000 // rows of table bulk
	pointSQL = "SELECT v FROM kv WHERE k = ?"
	bulkSQL  = "SELECT id, name, value, count FROM bulk"
	poolSize = 8
)

// bulkRow receives one row of the bulk table.
type bulkRow struct {
	ID    int64
	Name  string
	Value float64
	Count int64
}

// keys yields pseudo-random keys of kv. The generator and its constants are the same as
// in the C++ twin, so both ask for the same sequence of rows.
type keys struct{ x uint32 }

func (k *keys) next() int64 {
	k.x = k.x*1664525 + 1013904223
	return int64(k.x % kvRows)
}

func seed(worker int) keys { return keys{x: uint32(worker)*2654435761 + 1} }

// budget says when a run is over: after a duration, or after a number of operations
// shared by all workers.
type budget struct {
	deadline time.Time
	ops      int64 // > 0: count mode
	claimed  int64 // operations started so far (count mode), updated atomically
}

// take reports whether one more operation may start.
func (b *budget) take() bool {
	if b.ops > 0 {
		return atomic.AddInt64(&b.claimed, 1) <= b.ops
	}
	return time.Now().Before(b.deadline)
}

func cpuSeconds() float64 {
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		fail("getrusage: %v", err)
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(u.Utime) + tv(u.Stime)
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go_compare: "+format+"\n", args...)
	os.Exit(1)
}

func pointQuery(q func(k int64) *sql.Row, k int64) {
	var v string
	if err := q(k).Scan(&v); err != nil {
		fail("point query: %v", err)
	}
	if v == "" {
		fail("point query: empty value for key %d", k)
	}
}

func bulkQuery(db *sql.DB) {
	rows, err := db.Query(bulkSQL)
	if err != nil {
		fail("bulk query: %v", err)
	}
	// A fresh slice per result, as the C++ side gets a fresh std::vector.
	var out []bulkRow
	for rows.Next() {
		var r bulkRow
		if err := rows.Scan(&r.ID, &r.Name, &r.Value, &r.Count); err != nil {
			fail("bulk scan: %v", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		fail("bulk rows: %v", err)
	}
	rows.Close()
	if len(out) != bulkRows {
		fail("bulk query: %d rows instead of %d", len(out), bulkRows)
	}
}

func main() {
	address := flag.String("address", "", "node address HOST:PORT (required)")
	workload := flag.String("workload", "", "point, prepared, bulk or pool8 (required)")
	seconds := flag.Float64("seconds", 5, "length of the measured run")
	ops := flag.Int64("ops", 0, "run this many operations instead of --seconds")
	database := flag.String("database", "bench", "database name")
	flag.Parse()
	if *address == "" || *workload == "" || flag.NArg() != 0 || *seconds <= 0 || *ops < 0 {
		flag.Usage()
		os.Exit(2)
	}

	store := client.NewInmemNodeStore()
	if err := store.Set(context.Background(), []client.NodeInfo{{ID: 1, Address: *address}}); err != nil {
		fail("node store: %v", err)
	}
	// Give up quickly when the node is not there, instead of retrying for ever.
	drv, err := driver.New(store, driver.WithRetryLimit(3), driver.WithConnectionTimeout(10*time.Second))
	if err != nil {
		fail("driver: %v", err)
	}
	connector, err := drv.OpenConnector(*database)
	if err != nil {
		fail("connector: %v", err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()

	// run is the measured loop of one worker; warm runs once per connection beforehand
	// so that no connection is opened (nor statement prepared) while the clock runs.
	var run func(worker int, b *budget) int64
	var warm func()
	workers := 1
	switch *workload {
	case "point":
		db.SetMaxOpenConns(1)
		q := func(k int64) *sql.Row { return db.QueryRow(pointSQL, k) }
		warm = func() { pointQuery(q, 0) }
		run = func(worker int, b *budget) int64 {
			n, ks := int64(0), seed(worker)
			for b.take() {
				pointQuery(q, ks.next())
				n++
			}
			return n
		}
	case "prepared":
		db.SetMaxOpenConns(1)
		stmt, err := db.Prepare(pointSQL)
		if err != nil {
			fail("prepare: %v", err)
		}
		defer stmt.Close()
		q := func(k int64) *sql.Row { return stmt.QueryRow(k) }
		warm = func() { pointQuery(q, 0) }
		run = func(worker int, b *budget) int64 {
			n, ks := int64(0), seed(worker)
			for b.take() {
				pointQuery(q, ks.next())
				n++
			}
			return n
		}
	case "bulk":
		db.SetMaxOpenConns(1)
		warm = func() { bulkQuery(db) }
		run = func(_ int, b *budget) int64 {
			n := int64(0)
			for b.take() {
				bulkQuery(db)
				n++
			}
			return n
		}
	case "pool8":
		workers = poolSize
		db.SetMaxOpenConns(poolSize)
		db.SetMaxIdleConns(poolSize)
		q := func(k int64) *sql.Row { return db.QueryRow(pointSQL, k) }
		warm = func() {
			// Hold poolSize connections at once so that all of them get opened.
			ctx := context.Background()
			conns := make([]*sql.Conn, 0, poolSize)
			for i := 0; i < poolSize; i++ {
				c, err := db.Conn(ctx)
				if err != nil {
					fail("open connection: %v", err)
				}
				var v string
				if err := c.QueryRowContext(ctx, pointSQL, 0).Scan(&v); err != nil {
					fail("warm-up query: %v", err)
				}
				conns = append(conns, c)
			}
			for _, c := range conns {
				c.Close()
			}
		}
		run = func(worker int, b *budget) int64 {
			n, ks := int64(0), seed(worker)
			for b.take() {
				pointQuery(q, ks.next())
				n++
			}
			return n
		}
	default:
		fail("unknown workload %q (point, prepared, bulk, pool8)", *workload)
	}

	warm()

	b := &budget{ops: *ops}
	cpu0 := cpuSeconds()
	start := time.Now()
	b.deadline = start.Add(time.Duration(*seconds * float64(time.Second)))
	var total int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			atomic.AddInt64(&total, run(w+1, b))
		}(w)
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	cpu := cpuSeconds() - cpu0

	fmt.Printf("client=go workload=%s threads=%d ops=%d elapsed_s=%.6f cpu_s=%.6f\n",
		*workload, runtime.GOMAXPROCS(0), atomic.LoadInt64(&total), elapsed, cpu)
}
