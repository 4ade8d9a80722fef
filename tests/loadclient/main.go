// Command loadclient drives an OpenAI-compatible completions server
// (realm serve, llama.cpp's llama-server) with concurrent streaming
// clients and prints one JSON line: the aggregate generated tokens per
// second and the time to first token of the requests (scripts/
// loadtest.sh, make loadtest).
//
//	loadclient -url http://127.0.0.1:8080 -model tiny -clients 8 -requests 2 -tokens 64
//
// Every client sends its requests one after the other, all clients at
// once; each prompt is unique (client and request number first) so that
// no server can answer from a cached prefix.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080", "server base URL")
	model := flag.String("model", "tiny", "model name")
	clients := flag.Int("clients", 1, "concurrent streaming clients")
	requests := flag.Int("requests", 2, "requests each client sends, one after the other")
	tokens := flag.Int("tokens", 64, "max_tokens of each request")
	label := flag.String("label", "", "label copied into the result line")
	timeout := flag.Duration("timeout", 5*time.Minute, "limit of one request")
	summary := flag.String("summary", "", "print the table of the result lines in this file instead of running")
	flag.Parse()
	if *summary != "" {
		if err := summarize(os.Stdout, *summary); err != nil {
			fmt.Fprintln(os.Stderr, "loadclient:", err)
			os.Exit(1)
		}
		return
	}
	if *clients < 1 || *requests < 1 || *tokens < 1 {
		fmt.Fprintln(os.Stderr, "loadclient: -clients, -requests and -tokens must be ≥ 1")
		os.Exit(2)
	}
	res, err := run(*url, *model, *clients, *requests, *tokens, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadclient:", err)
		os.Exit(1)
	}
	res.Label = *label
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
}

// result is the printed outcome of a run.
type result struct {
	Label     string  `json:"label,omitempty"`
	Clients   int     `json:"clients"`
	Requests  int     `json:"requests"`
	Tokens    int     `json:"generated_tokens"`
	Seconds   float64 `json:"seconds"`
	TokPerSec float64 `json:"tok_per_s"`
	TTFTp50ms float64 `json:"ttft_p50_ms"`
	TTFTp99ms float64 `json:"ttft_p99_ms"`
}

// run runs the clients and aggregates their requests.
func run(base, model string, clients, requests, tokens int, timeout time.Duration) (*result, error) {
	// A connection per request: llama-server closes idle connections,
	// and a POST on one it just closed fails (EOF) instead of retrying.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var (
		mu    sync.Mutex
		ttfts []time.Duration
		total int
		errs  []error
		wg    sync.WaitGroup
	)
	start := time.Now()
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range requests {
				prompt := fmt.Sprintf("Request %d of client %d. Once upon a time, in a small village by the sea, there lived an old fisherman who", i, c)
				ttft, n, err := stream(client, base, model, prompt, tokens, timeout)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Errorf("client %d request %d: %w", c, i, err))
				} else {
					ttfts = append(ttfts, ttft)
					total += n
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	slices.Sort(ttfts)
	pct := func(p float64) float64 {
		i := int(p*float64(len(ttfts))+0.5) - 1
		i = max(0, min(len(ttfts)-1, i))
		return float64(ttfts[i].Microseconds()) / 1000
	}
	return &result{Clients: clients, Requests: len(ttfts), Tokens: total, Seconds: elapsed.Seconds(),
		TokPerSec: float64(total) / elapsed.Seconds(), TTFTp50ms: pct(0.50), TTFTp99ms: pct(0.99)}, nil
}

// stream sends one streamed completion and returns the time to its
// first non-empty text chunk and its generated tokens (the usage chunk's
// completion_tokens, else the number of text chunks).
func stream(client *http.Client, base, model, prompt string, tokens int, timeout time.Duration) (time.Duration, int, error) {
	body, _ := json.Marshal(map[string]any{
		"model": model, "prompt": prompt, "max_tokens": tokens, "temperature": 0,
		"stream": true, "stream_options": map[string]any{"include_usage": true},
	})
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/completions", strings.NewReader(string(body)))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	var ttft time.Duration
	chunks, usage := 0, -1
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			break
		}
		var ev struct {
			Choices []struct {
				Text string `json:"text"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return 0, 0, fmt.Errorf("bad event %q: %w", data, err)
		}
		if len(ev.Error) > 0 {
			return 0, 0, fmt.Errorf("stream error: %s", ev.Error)
		}
		for _, c := range ev.Choices {
			if c.Text != "" {
				if ttft == 0 {
					ttft = time.Since(start)
				}
				chunks++
			}
		}
		if ev.Usage != nil {
			usage = ev.Usage.CompletionTokens
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, err
	}
	if ttft == 0 {
		ttft = time.Since(start)
	}
	if usage >= 0 {
		return ttft, usage, nil
	}
	return ttft, chunks, nil
}

// summarize prints a Markdown table of the result lines in path: per
// label and client count the median over its rounds of tokens/s and of
// the TTFT percentiles, with tokens/s as a ratio to llama-server's and
// to the label's own 1-client figure.
func summarize(w io.Writer, path string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	type key struct {
		label   string
		clients int
	}
	runs := map[key][]result{}
	var labels []string
	var counts []int
	for line := range strings.SplitSeq(strings.TrimSpace(string(raw)), "\n") {
		if line == "" {
			continue
		}
		var r result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		k := key{r.Label, r.Clients}
		runs[k] = append(runs[k], r)
		if !slices.Contains(labels, r.Label) {
			labels = append(labels, r.Label)
		}
		if !slices.Contains(counts, r.Clients) {
			counts = append(counts, r.Clients)
		}
	}
	slices.Sort(counts)
	median := func(rs []result, f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	tps := func(k key) float64 {
		if rs := runs[k]; len(rs) > 0 {
			return median(rs, func(r result) float64 { return r.TokPerSec })
		}
		return 0
	}
	fmt.Fprintln(w, "| server | clients | rounds | tok/s | TTFT p50 ms | TTFT p99 ms | vs llama-server | vs own 1 client |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	for _, l := range labels {
		for _, n := range counts {
			k := key{l, n}
			rs := runs[k]
			if len(rs) == 0 {
				continue
			}
			t := tps(k)
			vsLlama, vsOne := "", ""
			if ref := tps(key{"llama-server", n}); ref > 0 && l != "llama-server" {
				vsLlama = fmt.Sprintf("%.2f×", t/ref)
			}
			if one := tps(key{l, 1}); one > 0 && n != 1 {
				vsOne = fmt.Sprintf("%.2f×", t/one)
			}
			fmt.Fprintf(w, "| %s | %d | %d | %.1f | %.0f | %.0f | %s | %s |\n", l, n, len(rs), t,
				median(rs, func(r result) float64 { return r.TTFTp50ms }),
				median(rs, func(r result) float64 { return r.TTFTp99ms }), vsLlama, vsOne)
		}
	}
	return nil
}
