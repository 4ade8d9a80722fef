package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// frontMetrics counts the front end's routing outcomes.
type frontMetrics struct {
	mu       sync.Mutex
	outcomes map[[2]string]uint64 // worker, outcome
}

func (m *frontMetrics) init() { m.outcomes = map[[2]string]uint64{} }

func (m *frontMetrics) count(worker, outcome string) {
	m.mu.Lock()
	m.outcomes[[2]string{worker, outcome}]++
	m.mu.Unlock()
}

// metricsTimeout bounds the scrape of one worker.
const metricsTimeout = time.Second

// serveMetrics writes the front end's metrics, the members' state as
// gauges, then every worker's own metrics with a worker label added.
func (f *Frontend) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b bytes.Buffer
	f.m.mu.Lock()
	keys := make([][2]string, 0, len(f.m.outcomes))
	for k := range f.m.outcomes {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i][0]+keys[i][1] < keys[j][0]+keys[j][1] })
	b.WriteString("# HELP realm_cluster_routed_total Requests routed to a worker, by outcome.\n# TYPE realm_cluster_routed_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "realm_cluster_routed_total{worker=%q,outcome=%q} %d\n", k[0], k[1], f.m.outcomes[k])
	}
	f.m.mu.Unlock()
	members := f.Members()
	gauges := []struct {
		name, help string
		val        func(*WorkerState) float64
	}{
		{"realm_cluster_worker_running", "Requests running on a worker (its published state).", func(s *WorkerState) float64 { return float64(s.Running) }},
		{"realm_cluster_worker_queued", "Requests waiting on a worker (its published state).", func(s *WorkerState) float64 { return float64(s.Queued) }},
		{"realm_cluster_worker_draining", "1 while a worker drains.", func(s *WorkerState) float64 { return b2f(s.Draining) }},
		{"realm_cluster_worker_models_loaded", "Models a worker holds in memory.", func(s *WorkerState) float64 { return float64(len(s.Loaded)) }},
	}
	for _, g := range gauges {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n", g.name, g.help, g.name)
		for i := range members {
			fmt.Fprintf(&b, "%s{worker=%q,backend=%q} %s\n", g.name, members[i].ID, members[i].Backend, strconv.FormatFloat(g.val(&members[i]), 'g', -1, 64))
		}
	}
	fmt.Fprintf(&b, "# HELP realm_cluster_queue_depth Requests held by all workers (the autoscaling signal).\n# TYPE realm_cluster_queue_depth gauge\n")
	total := 0
	for i := range members {
		total += members[i].Load()
	}
	fmt.Fprintf(&b, "realm_cluster_queue_depth %d\n", total)

	// The workers' own metrics, scraped in parallel.
	texts := make([][]byte, len(members))
	var wg sync.WaitGroup
	for i := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(r.Context(), metricsTimeout)
			defer cancel()
			if msg, err := f.nc.RequestWithContext(ctx, metricsSubject(members[i].ID), nil); err == nil {
				texts[i] = msg.Data
			}
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for i := range members {
		if texts[i] != nil {
			relabel(&b, bytes.NewReader(texts[i]), "worker", members[i].ID, seen)
		}
	}
	w.Write(b.Bytes())
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// relabel copies Prometheus text exposition from r to w with label
// name=value added to every sample; HELP and TYPE lines already in seen
// are dropped (one per family across workers).
func relabel(w io.Writer, r io.Reader, name, value string, seen map[string]bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	lbl := name + "=" + strconv.Quote(value)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			if !seen[line] {
				seen[line] = true
				fmt.Fprintln(w, line)
			}
			continue
		}
		i := strings.IndexAny(line, "{ ")
		if i < 0 {
			continue
		}
		if line[i] == '{' {
			if strings.HasPrefix(line[i+1:], "}") {
				fmt.Fprintf(w, "%s{%s%s\n", line[:i], lbl, line[i+1:])
			} else {
				fmt.Fprintf(w, "%s{%s,%s\n", line[:i], lbl, line[i+1:])
			}
			continue
		}
		fmt.Fprintf(w, "%s{%s}%s\n", line[:i], lbl, line[i:])
	}
}
