package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rungdev/rung/internal/harness"
)

// The hostile-input suite runs a real `rung serve` with its abuse controls on and
// attacks it from loopback. Each case asserts what the server did (status, counter) and
// logs its figures. Resource checks are ratios to a baseline taken in the same run (the
// server's open files and RSS before the attack, a legitimate client's rate alone), so
// that a loaded machine moves both sides; the timing figures (legitimate p99 under
// attack) are recorded in BENCHMARKS.md, never asserted here.

func hostileServe(t *testing.T, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--data-dir", t.TempDir(), "--flush-interval", "50ms",
		"--rate-ip", "200", "--rate-ip-burst", "200", "--sites", "example.com,shop.example=https://shop.example",
		"--bots", "drop", "--read-timeout", "2s", "--buffer-bytes", "16777216"}, extra...)
	return startServe(t, args...)
}

// clientFrom returns an HTTP client whose connections leave from the loopback address
// src (127.0.0.0/8 is all loopback on Linux), so one test can be many clients.
func clientFrom(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 64}}
}

func send(c *http.Client, url, body string, header ...string) (int, string, time.Duration, error) {
	req, _ := http.NewRequest("POST", url, strings.NewReader(body))
	req.Header.Set("Content-Type", "text/plain")
	req.Header.Set("User-Agent", harness.BrowserUA)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", 0, err
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b), time.Since(start), nil
}

// statusFrom posts body from the address src on a connection of its own and returns the
// answer's status. A refused connection is answered as soon as it is accepted, maybe
// before the request is written; net/http's client takes such an answer for an
// unsolicited one and reports an error, so the request goes over a raw connection.
func statusFrom(src, addr, body string) (int, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	// A write to a connection the server has refused and closed may fail; its answer is
	// read all the same.
	fmt.Fprintf(c, "POST /collect HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nUser-Agent: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		harness.BrowserUA, len(body), body)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// collect posts one pageview of site to p from c, with an event_id of its own, padded
// with spaces to pad bytes if that is longer, and records the answer in p.ledger.
func (p *proc) collect(c *http.Client, site string, pad int, header ...string) (int, string, time.Duration, error) {
	n := p.seq.Add(1)
	id := fmt.Sprintf("hostile-%08d", n)
	body := fmt.Sprintf(`{"type":"pageview","site":%q,"anonymous_id":"visitor-%06d","event_id":%q,"url":"https://%s/"}`, site, n%1000, id, site)
	body += strings.Repeat(" ", max(pad-len(body), 0))
	st, answer, d, err := send(c, p.url("/collect"), body, header...)
	p.ledger.Collect([]string{id}, st, []byte(answer), err)
	return st, answer, d, err
}

// hostileCheck stops p and ends in harness's check, by event_id, over what p.collect
// sent: every signal answered 202 stored once (or counted dropped), none refused
// stored; and the memory figures under their bounds.
func hostileCheck(t *testing.T, p *proc, mem ...harness.Memory) {
	t.Helper()
	dropped := p.dropped()
	p.stop()
	p.ledger.Check(t, harness.Outcome{Stored: copies(storedSignals(t, p.cmd.Args)), Dropped: dropped, Memory: mem})
}

func signalFor(site string, i int) string {
	return fmt.Sprintf(`{"type":"pageview","site":%q,"anonymous_id":"visitor-%06d","event_id":"hostile-%08d","url":"https://%s/"}`, site, i%1000, i, site)
}

// openFiles counts a process's open file descriptors: its connections, and a few
// listeners, stores and stdio that a baseline taken before an attack accounts for.
func openFiles(t *testing.T, pid int) int {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// rssBytes reads a process's resident set size.
func rssBytes(t *testing.T, pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func p99(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)*99/100]
}

// paced sends well-formed requests from its own address, one every gap, until stop is
// closed, and returns their latencies.
func paced(t *testing.T, p *proc, src string, gap time.Duration, stop <-chan struct{}) []time.Duration {
	c := clientFrom(src)
	var lat []time.Duration
	tick := time.NewTicker(gap)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return lat
		case <-tick.C:
		}
		st, body, d, err := p.collect(c, "example.com", 0, "Origin", "https://example.com")
		if err != nil || st != 202 {
			t.Errorf("legitimate request: %d %s %v", st, body, err)
			return lat
		}
		lat = append(lat, d)
	}
}

// floodConns is how many connections the single-address flood keeps busy, for
// floodPhase.
const (
	floodConns = 16
	floodPhase = 2 * time.Second
)

// flood is what a single-address flood did, and what a legitimate client saw before,
// during and after it.
type flood struct {
	counts                map[int]int
	before, during, after []time.Duration
}

func (f flood) total() (n int) {
	for _, c := range f.counts {
		n += c
	}
	return n
}

func (f flood) String() string {
	quiet := max(p99(f.before), p99(f.after))
	return fmt.Sprintf("statuses %v; legitimate p99 before %v, during %v, after %v (%d, %d, %d requests): during/quiet %.2f",
		f.counts, p99(f.before).Round(time.Microsecond), p99(f.during).Round(time.Microsecond), p99(f.after).Round(time.Microsecond),
		len(f.before), len(f.during), len(f.after), float64(p99(f.during))/float64(quiet))
}

// floodOne measures a legitimate client alone, then while floodConns connections from
// src post as fast as they are answered, then alone again. The legitimate client sends
// from a fresh address in each phase (legit[0..2]), at most 250 requests/s: within the
// per-address limit of hostileServe over the phase.
func floodOne(t *testing.T, p *proc, src string, legit [3]string) flood {
	const phase, gap = floodPhase, 4 * time.Millisecond
	f := flood{counts: map[int]int{}}
	measure := func(legitSrc string, during func()) []time.Duration {
		stop := make(chan struct{})
		out := make(chan []time.Duration)
		go func() { out <- paced(t, p, legitSrc, gap, stop) }()
		during()
		close(stop)
		return <-out
	}
	f.before = measure(legit[0], func() { time.Sleep(phase) })
	f.during = measure(legit[1], func() {
		c := clientFrom(src)
		var mu sync.Mutex
		var wg sync.WaitGroup
		end := time.Now().Add(phase)
		for w := 0; w < floodConns; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for time.Now().Before(end) {
					st, _, _, err := p.collect(c, "example.com", 0)
					if err != nil {
						t.Errorf("flood: %v", err)
						return
					}
					mu.Lock()
					f.counts[st]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	})
	f.after = measure(legit[2], func() { time.Sleep(phase) })
	return f
}

// slowConns is how many connections the slowloris case holds open, slowTimeout the
// read timeout that cuts them.
const (
	slowConns   = 10000
	slowTimeout = 6 * time.Second
)

// raiseFileLimit raises this process's open-file limit to at least n, which `rung serve`
// started after it inherits (Go raises its own soft limit at start, but gives children
// the original one unless the limit was set explicitly).
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < n {
		t.Fatalf("open-file hard limit %d is under the %d the slow-client case needs: raise it (ulimit -Hn)", lim.Max, n)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
}

// slow is what a slowloris attack did.
type slow struct {
	answered, reset, cut int             // answered (408) and closed, closed without an answer; both: cut
	peakOpen             int             // most connections the attacker had open at once
	peakConns            int             // most connections the server held at once, over its baseline
	idleRSS, peakRSS     int64           // the server's RSS before the attack, and its largest meanwhile
	cutAfter             time.Duration   // from the first dial to the last connection cut
	legit                []time.Duration // the legitimate client's latencies meanwhile
	legitAlone           []time.Duration // the same client's over legitAlonePhase before the attack
	attack               time.Duration   // from the first dial to the last cut
}

// legitAlonePhase is how long the legitimate client's rate is measured alone.
const legitAlonePhase = time.Second

func (s slow) String() string {
	return fmt.Sprintf("%d cut (%d answered 408, %d closed or reset) within %v of the first dial; attacker held %d at once, server %d; "+
		"RSS %d MiB idle, peak %d MiB (%.1f KiB per connection held); legitimate client %.0f requests/s alone, %.0f/s meanwhile, p99 %v",
		s.cut, s.answered, s.reset, s.cutAfter.Round(100*time.Millisecond), s.peakOpen, s.peakConns, s.idleRSS>>20, s.peakRSS>>20,
		s.rssPerConn()/1024, s.legitRate(), s.legitRateMeanwhile(), p99(s.legit).Round(time.Microsecond))
}

// rssPerConn is the RSS the server grew by per connection it held.
func (s slow) rssPerConn() float64 {
	return float64(s.peakRSS-s.idleRSS) / float64(max(s.peakConns, 1))
}

// legitRate is the legitimate client's answered requests per second alone, and
// legitRateMeanwhile the same during the attack.
func (s slow) legitRate() float64 { return float64(len(s.legitAlone)) / legitAlonePhase.Seconds() }
func (s slow) legitRateMeanwhile() float64 {
	return float64(len(s.legit)) / max(s.attack.Seconds(), 1e-3)
}

// slowloris opens n connections that send a request head and then trickle its body a
// byte at a time, every 500 ms, and waits until the server has cut each one off, while a
// legitimate client from legitSrc posts every 6 ms.
func slowloris(t *testing.T, p *proc, n int, legitSrc string) slow {
	var res slow
	pid := p.cmd.Process.Pid
	// The baselines: what the server holds and weighs idle, and the legitimate client's
	// rate alone, on this machine as loaded as it is now.
	idleFiles := openFiles(t, pid)
	res.idleRSS = rssBytes(t, pid)
	stopAlone := make(chan struct{})
	time.AfterFunc(legitAlonePhase, func() { close(stopAlone) })
	res.legitAlone = paced(t, p, legitSrc, 6*time.Millisecond, stopAlone)
	var (
		mu     sync.Mutex
		conns  = make([]net.Conn, n)
		wg     sync.WaitGroup
		start  = time.Now()
		done   = make(chan struct{})
		opened atomic.Int64 // dialed, less cut
	)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	legitOut := make(chan []time.Duration)
	// A request every 6 ms stays under hostileServe's --rate-ip 200.
	go func() { legitOut <- paced(t, p, legitSrc, 6*time.Millisecond, done) }()
	// The server's connections and memory, and the attacker's, sampled until the attack
	// is over.
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			res.peakOpen = max(res.peakOpen, int(opened.Load()))
			res.peakConns = max(res.peakConns, openFiles(t, pid)-idleFiles)
			res.peakRSS = max(res.peakRSS, rssBytes(t, pid))
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	// Dial from 250 addresses, 8 dialers at once.
	var dialed sync.WaitGroup
	for w := 0; w < 8; w++ {
		dialed.Add(1)
		go func() {
			defer dialed.Done()
			for i := w; i < n; i += 8 {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 2+byte(i/250%4), byte(1+i%250))}}
				c, err := d.Dial("tcp", p.addr)
				if err != nil {
					t.Errorf("slow connection %d: %v", i, err)
					return
				}
				fmt.Fprintf(c, "POST /collect HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n{")
				conns[i] = c
				opened.Add(1)
				// Each connection waits for the server's answer or close.
				wg.Add(1)
				go func() {
					defer wg.Done()
					c.SetReadDeadline(time.Now().Add(30 * time.Second))
					line, err := bufio.NewReader(c).ReadString('\n')
					mu.Lock()
					defer mu.Unlock()
					if !isTimeout(err) {
						opened.Add(-1)
					}
					switch {
					case err == nil && strings.Contains(line, " 408 "):
						res.answered++
					case err == nil:
						t.Errorf("slow connection answered %q, want 408", line)
					case isTimeout(err):
						return // still open: not cut
					default:
						res.reset++
					}
					res.cut++
					res.cutAfter = max(res.cutAfter, time.Since(start))
				}()
			}
		}()
	}
	dialed.Wait()
	// Trickle a byte on every connection every 500 ms until all are cut.
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		tick := time.NewTicker(500 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			for _, c := range conns {
				if c != nil {
					c.SetWriteDeadline(time.Now().Add(time.Millisecond))
					c.Write([]byte(" "))
				}
			}
		}
	}()
	wg.Wait()
	res.attack = time.Since(start)
	close(done)
	<-trickled
	<-sampled
	res.legit = <-legitOut
	return res
}

// legit sends n well-formed requests from its own address and returns their latencies.
func legit(t *testing.T, p *proc, src string, n int) []time.Duration {
	c := clientFrom(src)
	var lat []time.Duration
	for range n {
		st, body, d, err := p.collect(c, "example.com", 0, "Origin", "https://example.com")
		if err != nil || st != 202 {
			t.Errorf("legitimate request: %d %s %v", st, body, err)
			return lat
		}
		lat = append(lat, d)
	}
	return lat
}

func TestHostile(t *testing.T) {
	raiseFileLimit(t, slowConns+2000)
	p := hostileServe(t)
	base := legit(t, p, "127.0.0.2", 150)
	idleRSS := rssBytes(t, p.cmd.Process.Pid)
	t.Logf("legitimate p99 alone: %v; RSS %d MiB", p99(base), idleRSS>>20)

	t.Run("flood from one address", func(t *testing.T) {
		f := floodOne(t, p, "127.0.0.3", [3]string{"127.0.0.4", "127.0.0.8", "127.0.0.9"})
		if f.counts[429] == 0 || f.counts[202] == 0 {
			t.Errorf("flood of %d from one address: statuses %v, want 202s then 429s", f.total(), f.counts)
		}
		if got := p.metric(`rung_requests_rejected_total{reason="rate_ip"}`); got != float64(f.counts[429]) {
			t.Errorf("rate_ip counted %v, 429s seen %d", got, f.counts[429])
		}
		t.Logf("flood from one address, %d connections, 429s answered at once: %v", floodConns, f)
	})

	t.Run("flood from one address, 429s held", func(t *testing.T) {
		const delay = 100 * time.Millisecond
		pd := hostileServe(t, "--rate-ip-delay", delay.String())
		f := floodOne(t, pd, "127.0.0.3", [3]string{"127.0.0.4", "127.0.0.8", "127.0.0.9"})
		if f.counts[429] == 0 || f.counts[202] == 0 {
			t.Errorf("flood of %d from one address: statuses %v, want 202s then 429s", f.total(), f.counts)
		}
		if got := pd.metric(`rung_requests_rejected_total{reason="rate_ip"}`); got != float64(f.counts[429]) {
			t.Errorf("rate_ip counted %v, 429s seen %d", got, f.counts[429])
		}
		// Each 429 holds its connection for the delay: a flood that waits for its answers
		// gets at most one refusal per delay per connection.
		if most := floodConns * int(floodPhase/delay+1); f.counts[429] > most {
			t.Errorf("%d 429s over %v on %d connections held %v each: want at most %d", f.counts[429], floodPhase, floodConns, delay, most)
		}
		t.Logf("flood from one address, %d connections, 429s held %v: %v", floodConns, delay, f)
		hostileCheck(t, pd)
	})

	t.Run("flood from many addresses", func(t *testing.T) {
		counts := map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for a := 10; a < 60; a++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := clientFrom(fmt.Sprintf("127.0.1.%d", a))
				for range 40 {
					st, _, _, err := p.collect(c, "example.com", 0)
					if err != nil {
						t.Errorf("flood: %v", err)
						return
					}
					mu.Lock()
					counts[st]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if counts[202] != 2000 {
			t.Errorf("50 addresses × 40 requests, each under its own limit: statuses %v, want all 202", counts)
		}
	})

	t.Run("forged origins, unknown sites, bots, compressed bodies", func(t *testing.T) {
		c := clientFrom("127.0.0.5")
		for _, tc := range []struct {
			name, site string // site: a signal of it, through p.collect; else body
			body       string
			header     []string
			status     int
			counter    string
		}{
			{"forged origin", "shop.example", "", []string{"Origin", "https://evil.example"}, 400, `rung_signals_rejected_total{reason="origin"}`},
			{"unknown site", "elsewhere.example", "", nil, 400, `rung_signals_rejected_total{reason="unknown_site"}`},
			{"headless crawler", "example.com", "", []string{"User-Agent", "Mozilla/5.0 (compatible; Googlebot/2.1)"}, 400, `rung_signals_rejected_total{reason="bot"}`},
			{"gzip bomb", "", "\x1f\x8b\x08\x00", []string{"Content-Encoding", "gzip"}, 415, `rung_requests_rejected_total{reason="content_encoding"}`},
		} {
			var (
				st   int
				body string
				err  error
			)
			if tc.site != "" {
				st, body, _, err = p.collect(c, tc.site, 0, tc.header...)
			} else {
				st, body, _, err = send(c, p.url("/collect"), tc.body, tc.header...)
			}
			if err != nil || st != tc.status {
				t.Errorf("%s: %d %s %v, want %d", tc.name, st, body, err, tc.status)
			}
			if p.metric(tc.counter) < 1 {
				t.Errorf("%s: %s not counted", tc.name, tc.counter)
			}
		}
	})

	t.Run("bodies around the limit", func(t *testing.T) {
		c := clientFrom("127.0.0.6")
		const limit = 1 << 20
		for _, size := range []int{limit - 1, limit, limit + 1, 2 * limit, 3 * limit} {
			st, _, _, err := p.collect(c, "example.com", size)
			want := 202
			if size > limit {
				want = 413
			}
			if size > 2*limit+4096 && err != nil {
				// Past twice the limit the server stops reading, answers 413 and closes;
				// a client still sending may see that as a reset instead of the answer.
				t.Logf("body of %d bytes: %v", size, err)
				continue
			}
			if err != nil || st != want {
				t.Errorf("body of %d bytes: %d %v, want %d", size, st, err, want)
			}
		}
	})

	t.Run("slow clients are cut off", func(t *testing.T) {
		// A server of its own, whose read timeout outlasts the dialing of all the slow
		// connections on a busy machine, so that it holds them all at once.
		ps := hostileServe(t, "--max-conns", strconv.Itoa(slowConns+1000), "--read-timeout", slowTimeout.String())
		sl := slowloris(t, ps, slowConns, "127.0.0.7")
		if sl.cut != slowConns {
			t.Errorf("%d of %d slow connections still open after the read timeout: %v", slowConns-sl.cut, slowConns, sl)
		}
		// However slowly this machine dials, the server holds what the attacker has
		// open; it refuses none of it (--max-conns is above slowConns).
		if sl.peakConns < sl.peakOpen*9/10 {
			t.Errorf("the server held at most %d connections at once while the attacker had %d open: the attack did not happen", sl.peakConns, sl.peakOpen)
		}
		// The legitimate client is served throughout, if more slowly: at least a tenth of
		// the rate it had alone just before.
		if sl.legitRateMeanwhile() < sl.legitRate()/10 {
			t.Errorf("legitimate client answered %.0f requests/s while the slow connections were open, under a tenth of its %.0f/s alone", sl.legitRateMeanwhile(), sl.legitRate())
		}
		// Each held connection costs a goroutine and a read buffer of --max-header-bytes
		// (8 KiB): about 20 KiB of RSS over the server's idle figure.
		if perConn := sl.rssPerConn(); perConn > 32<<10 {
			t.Errorf("RSS grew by %.1f KiB per slow connection held (%d MiB idle, %d MiB with %d held), over 32 KiB", perConn/1024, sl.idleRSS>>20, sl.peakRSS>>20, sl.peakConns)
		}
		t.Logf("%d slow connections: %v; legitimate p99 alone %v", slowConns, sl, p99(base).Round(time.Microsecond))
		hostileCheck(t, ps)
	})

	t.Run("connection caps refuse the excess at once", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			flags  []string
			addrs  int // the slow connections come from this many addresses
			open   int
			held   int // connections the cap allows
			refuse string
		}{
			{"--max-conns-per-ip", []string{"--max-conns-per-ip", "50"}, 1, 200, 50, "HTTP/1.1 429 "},
			{"--max-conns", []string{"--max-conns", "100"}, 50, 150, 100, "HTTP/1.1 503 "},
		} {
			// The held connections are cut at the read timeout, long after the refused
			// ones are answered however busy the machine is.
			pc := hostileServe(t, append(tc.flags, "--read-timeout", "60s")...)
			refused, held := 0, 0
			var conns []net.Conn
			for i := 0; i < tc.open; i++ {
				d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 5, byte(1+i%tc.addrs))}}
				c, err := d.Dial("tcp", pc.addr)
				if err != nil {
					t.Fatalf("%s: connection %d: %v", tc.name, i, err)
				}
				defer c.Close()
				fmt.Fprintf(c, "POST /collect HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n{")
				conns = append(conns, c)
			}
			// Another address is still served under the per-address cap; under the global
			// one it is refused too, until the held connections time out.
			st, err := statusFrom("127.0.0.11", pc.addr, signalFor("example.com", 1))
			// The refused are answered and closed at once; the held wait for the read
			// timeout. Once every connection past the cap has its refusal (or 30 s, half
			// the read timeout, have passed) the rest are counted as held.
			var mu sync.Mutex
			var wg sync.WaitGroup
			enough := make(chan struct{})
			for _, c := range conns {
				wg.Add(1)
				go func() {
					defer wg.Done()
					line, err := bufio.NewReader(c).ReadString('\n')
					mu.Lock()
					defer mu.Unlock()
					switch {
					case err == nil && strings.HasPrefix(line, tc.refuse):
						if refused++; refused == tc.open-tc.held {
							close(enough)
						}
					case isTimeout(err):
						held++
					default:
						t.Errorf("%s: a connection answered %q, %v; want %q or nothing yet", tc.name, line, err, tc.refuse)
					}
				}()
			}
			select {
			case <-enough:
			case <-time.After(30 * time.Second):
			}
			for _, c := range conns {
				c.SetReadDeadline(time.Now()) // ends the reads still waiting: those are held
			}
			wg.Wait()
			// The global cap counts every connection: the test's own keep-alive one to
			// /healthz may hold a place.
			if held+refused != tc.open || held > tc.held || held < tc.held-1 {
				t.Errorf("%s: %d connections held, %d refused; want %d (or one fewer) and the rest", tc.name, held, refused, tc.held)
			}
			t.Logf("%s: %d slow connections from %d addresses: %d held, %d refused with %q at once; another address meanwhile: %d %v",
				tc.name, tc.open, tc.addrs, held, refused, strings.TrimSpace(tc.refuse), st, err)
			if tc.addrs == 1 && (err != nil || st != 202) || tc.addrs > 1 && st != 503 {
				t.Errorf("%s: another address got %d %v, want 202 under the per-address cap, 503 under the global one", tc.name, st, err)
			}
		}
	})

	// What the attacks leave behind is bounded by the 16 MiB buffer, not by the attack:
	// the RSS grows over its own idle figure by at most four buffers' worth.
	const buffer = 16 << 20
	rss := rssBytes(t, p.cmd.Process.Pid)
	var buf bytes.Buffer
	resp, err := http.Get(p.url("/metrics"))
	if err == nil {
		io.Copy(&buf, resp.Body)
		resp.Body.Close()
	}
	if p.metric("rung_validation_disagreements_total") != 0 {
		t.Error("validation disagreements under attack")
	}
	hostileCheck(t, p, harness.Memory{What: "RSS grown over the idle figure (bound: four times the buffer)", Used: rss - idleRSS, Bound: 4 * buffer})
}

func isTimeout(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
