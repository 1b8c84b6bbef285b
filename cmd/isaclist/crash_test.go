package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/mail"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/isaclist/isaclist/admin"
	"github.com/isaclist/isaclist/internal/sandbox"
	"github.com/isaclist/isaclist/internal/testmail"
	"github.com/isaclist/isaclist/pgp"
)

// TestCrashRounds kills the daemon with SIGKILL at random points of intake
// and fan-out, round after round, restarting it each time on the same
// data directory, and checks what the relay (the harness's sink) received:
//
//   - every post that got a 250 reaches every member;
//   - a post that was refused (4xx/5xx to DATA), or whose session broke
//     before its DATA was accepted (354), reaches no one;
//   - a post whose reply never came (the daemon died between the final dot
//     and the reply) reaches every member or no one: a post is stored with
//     all its copies in one transaction; it is not counted as lost;
//   - a copy is sent twice only across a crash: each copy the relay
//     received is attributed to the daemon run that sent it (the runs do
//     not overlap), and no run sends a post to a member twice, so each
//     crash duplicates a given post to a given member at most once;
//   - a crash duplicates at most delivery.concurrency copies in all. A
//     copy is duplicated when the relay took it but the daemon died before
//     recording that; the runner hands over that many copies at a time and
//     takes the next only once a result is committed. Those copies may be
//     of different posts to the same member, so one crash can duplicate
//     more than one copy to a member; the test reports how often.
//
// The daemon is the test binary run as `isaclist serve` in its own process
// group (processWorld, startProcess), so under -race it is race-enabled
// too; its whole process group is killed. The relay answers 451 to a
// share of the copies in some rounds, so that copies wait in the queue
// across crashes. Each round kills in one of four ways, in turn: right
// after a post's final dot and before the reply (intake: verification,
// store, fsync), right after the relay took a copy (fan-out: before the
// result is recorded), right after a 250, or at a random time.
//
// 50 rounds by default (CI runs them all), 3 with -short;
// ISACLIST_CRASH_ROUNDS=N runs N. ISACLIST_CRASH_SEED replays a schedule
// of kill points (the timing of the processes still varies).
func TestCrashRounds(t *testing.T) {
	rounds := 50
	if testing.Short() {
		rounds = 3
	}
	if s := os.Getenv("ISACLIST_CRASH_ROUNDS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("ISACLIST_CRASH_ROUNDS=%q: want a positive number", s)
		}
		rounds = n
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("ISACLIST_CRASH_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("ISACLIST_CRASH_SEED=%q: %v", s, err)
		}
		seed = n
	}
	t.Logf("%d rounds, ISACLIST_CRASH_SEED=%d", rounds, seed)
	rng := rand.New(rand.NewPCG(seed, 0x15ac))

	w := processWorld(t)
	members := []string{"alice@member-a.example", "bob@member-b.example", "carol@member-c.example"}

	var (
		mu    sync.Mutex
		posts = map[string]*crashPost{} // by token
	)
	modes := []crashMode{killAfterDot, killAfterRelayTook, killAfter250, killAtRandomTime}
	var stats struct {
		modes            map[crashMode]int
		how              map[string]int
		maxStart, starts time.Duration
		maxRound         time.Duration
	}
	stats.modes, stats.how = map[crashMode]int{}, map[string]int{}
	var procs []*daemonProcess
	// runStart[r] is how many copies the relay had received when daemon run
	// r was started: copies runStart[r] to runStart[r+1]-1 were sent by run
	// r (a killed daemon sends nothing more, and the next one is not
	// started before it is gone).
	var runStart []int
	var killedAt []time.Time // per round
	// startRun starts the next daemon run, once the previous one's last
	// copy, if the kill came right after its final dot, has been taken by
	// the relay: the kernel hands the relay what was written before the
	// kill, a moment after the daemon is gone.
	startRun := func() (*daemonProcess, time.Duration) {
		t.Helper()
		if len(procs) > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		runStart = append(runStart, len(w.sink.Messages()))
		ts := time.Now()
		p := w.startProcess(t)
		procs = append(procs, p)
		return p, time.Since(ts)
	}

	t0 := time.Now()
	for round := range rounds {
		tr := time.Now()
		mode := modes[round%len(modes)]
		stats.modes[mode]++
		// The relay's mood this round: always up, sometimes busy, mostly busy.
		deferShare := []float64{0, 0.25, 0.75}[rng.IntN(3)]
		if mode == killAfterRelayTook && deferShare > 0.25 {
			deferShare = 0.25 // that mode waits for copies to get through
		}
		w.sink.SetReject(func(string) *smtp.SMTPError {
			if deferShare > 0 && rand.Float64() < deferShare {
				return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "relay busy, try later"}
			}
			return nil
		})

		p, started := startRun()
		stats.starts += started
		stats.maxStart = max(stats.maxStart, started)
		killFrom := time.Now()

		k := &crashKill{pgid: p.cmd.Process.Pid}
		// Whatever the mode, the round ends with a kill.
		fallback := time.AfterFunc(5*time.Second, func() { k.kill("fallback after 5s") })
		nth := 1 + rng.IntN(6)          // which dot, 250 or relayed copy triggers the kill
		jitter := rng.Int64N(3_000_000) // and how long after it (ns)
		var dots, oks, accepted atomic.Int64
		hooks := crashHooks{after250: func() { accepted.Add(1) }}
		switch mode {
		case killAfterDot:
			hooks.afterDot = func() {
				if dots.Add(1) == int64(nth) {
					time.Sleep(time.Duration(jitter))
					k.kill(string(mode))
				}
			}
		case killAfter250:
			hooks.after250 = func() {
				accepted.Add(1)
				if oks.Add(1) == int64(nth) {
					time.Sleep(time.Duration(jitter))
					k.kill(string(mode))
				}
			}
		case killAfterRelayTook:
			base := len(w.sink.Messages())
			go func() {
				// Or, if the copies are slow to come, in the fan-out
				// anyway.
				got := w.sink.Wait(base+nth, 2*time.Second)
				time.Sleep(time.Duration(jitter))
				if len(got) >= base+nth {
					k.kill(string(mode))
				} else {
					k.kill("during fan-out, no copy came within 2s")
				}
			}()
		case killAtRandomTime:
			time.AfterFunc(time.Duration(rng.Int64N(int64(400*time.Millisecond))), func() { k.kill(string(mode)) })
		}

		// Three members post concurrently, up to 6 posts each, until the
		// kill.
		var wg sync.WaitGroup
		for _, from := range members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				user, domain, _ := strings.Cut(from, "@")
				for n := range 6 {
					if k.fired() {
						return
					}
					token := fmt.Sprintf("crash-r%03d-%s-%d", round, user, n)
					msg := sandbox.Message{From: from, To: "Energy ISAC <" + listAddr + ">", Subject: "[TLP:GREEN] " + token,
						Body: "Indicators of compromise and advice.\n", MessageID: "<" + token + "@" + domain + ">"}
					raw, err := w.domains[domain].Sign(msg.Bytes())
					cp := &crashPost{token: token, round: round}
					mu.Lock()
					posts[token] = cp
					mu.Unlock()
					if err != nil {
						cp.outcome, cp.reply = postNotSent, "signing: "+err.Error()
						return
					}
					cp.outcome, cp.reply = crashSend(p.smtp, "mail."+domain, from, raw, hooks)
					if cp.outcome != postAccepted {
						return
					}
				}
			}()
		}
		wg.Wait()
		// The senders are done (or cut off). A dot or 250 trigger that
		// will not fire any more becomes a kill during the fan-out.
		if !k.fired() && (mode == killAfterDot || mode == killAfter250) {
			time.AfterFunc(time.Duration(rng.Int64N(int64(200*time.Millisecond))), func() { k.kill("during fan-out, after the posts") })
		}
		err := p.wait(t, 15*time.Second)
		fallback.Stop()
		how := k.close()
		var ee *exec.ExitError
		if how == "" || !errors.As(err, &ee) || ee.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
			t.Fatalf("round %d: the daemon exited by itself (%v):\n%s", round, err, tail(p.stderr.String(), 8000))
		}
		stats.how[how]++
		killedAt = append(killedAt, k.at)
		stats.maxRound = max(stats.maxRound, time.Since(tr))
		t.Logf("round %d: killed %s (n=%d), relay deferring %.0f%%; started in %s, killed %s later; %d posts accepted, %d relayed copies so far",
			round, how, nth, deferShare*100, started.Round(time.Millisecond), k.at.Sub(killFrom).Round(time.Millisecond), accepted.Load(), len(w.sink.Messages()))
	}
	roundsTook := time.Since(t0)

	// The last start: the relay takes everything and the queue drains.
	w.sink.SetReject(nil)
	ts := time.Now()
	p, _ := startRun()
	t.Logf("%d rounds in %s, %s per round on average, %s at most; daemon start after a kill took %s on average, %s at most",
		rounds, roundsTook.Round(time.Millisecond), (roundsTook / time.Duration(rounds)).Round(time.Millisecond), stats.maxRound.Round(time.Millisecond),
		(stats.starts / time.Duration(rounds)).Round(time.Millisecond), stats.maxStart.Round(time.Millisecond))
	queueEmpty := func() (bool, string) {
		out, err := w.run("queue", "list", "--json")
		var q []admin.QueueEntry
		if err != nil || json.NewDecoder(strings.NewReader(out)).Decode(&q) != nil {
			return false, fmt.Sprintf("%v: %s", err, out) // the admin socket may not be up yet
		}
		return len(q) == 0, out
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		empty, out := queueEmpty()
		if empty {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the queue did not drain within 2 minutes:\n%.4000s\n--- daemon log:\n%s", out, tail(p.stderr.String(), 8000))
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("queue drained %s after the last start", time.Since(ts).Round(time.Millisecond))
	p.signal(syscall.SIGTERM)
	if err := p.wait(t, 30*time.Second); err != nil {
		t.Errorf("the last daemon exited with %v after SIGTERM", err)
	}

	// What reached whom, and in which daemon run.
	tokenRE := regexp.MustCompile(`crash-r\d{3}-[a-z]+-\d+`)
	type pair struct{ tok, rcpt string }
	runsOf := map[pair][]int{}        // the runs that sent a copy, in order
	takenAt := map[pair][]time.Time{} // when the relay took each
	run := 0
	for i, m := range w.sink.Messages() {
		for run+1 < len(runStart) && i >= runStart[run+1] {
			run++
		}
		msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
		tok := ""
		if err == nil {
			tok = tokenRE.FindString(msg.Header.Get("Subject"))
		}
		if tok == "" || len(m.To) != 1 {
			t.Errorf("unexpected message at the relay, to %v:\n%.600s", m.To, m.Data)
			continue
		}
		// A copy is the whole post, signed by the list: a body file torn by
		// a kill would not verify.
		if err := w.verifyListDKIM(m.Data); err != nil || !bytes.Contains(m.Data, []byte("Indicators of compromise and advice.")) {
			t.Errorf("the copy of %s to %s is not the whole post signed by the list (DKIM: %v):\n%.600s", tok, m.To[0], err, m.Data)
		}
		pr := pair{tok, m.To[0]}
		runsOf[pr] = append(runsOf[pr], run)
		takenAt[pr] = append(takenAt[pr], m.At)
	}
	// A copy sent again in a later run is a duplicate charged to the crash
	// that ended the earlier copy's run. Sent twice by one run, it is a
	// bug: a crash duplicates a given post to a given member at most once.
	type dup struct {
		pair
		before time.Duration // taken by the relay this long before the kill
	}
	dupsByCrash := map[int][]dup{} // crash (= the run it ended) -> the copies sent again
	dups, maxPerPair := 0, 0
	for pr, runs := range runsOf {
		maxPerPair = max(maxPerPair, len(runs))
		for i := 1; i < len(runs); i++ {
			dups++
			if runs[i] == runs[i-1] {
				t.Errorf("%s reached %s twice in daemon run %d, with no crash between", pr.tok, pr.rcpt, runs[i])
				continue
			}
			dupsByCrash[runs[i-1]] = append(dupsByCrash[runs[i-1]], dup{pr, killedAt[runs[i-1]].Sub(takenAt[pr][i-1])})
		}
	}
	// A crash can leave at most delivery.concurrency copies taken by the
	// relay and not yet recorded: the runner hands over that many at a
	// time and frees a slot only once the result is committed. Several of
	// them may be to the same member (copies of different posts).
	concurrency := w.cfg.Delivery.Concurrency
	maxPerCrash, maxPerMember, crashesPerMember, maxBefore := 0, 0, 0, time.Duration(0)
	for crash, ds := range dupsByCrash {
		maxPerCrash = max(maxPerCrash, len(ds))
		byMember := map[string]int{}
		for _, d := range ds {
			byMember[d.rcpt]++
			maxBefore = max(maxBefore, d.before)
		}
		over := false
		for _, n := range byMember {
			maxPerMember = max(maxPerMember, n)
			over = over || n > 1
		}
		if over {
			crashesPerMember++
		}
		if len(ds) > concurrency {
			var list []string
			for _, d := range ds {
				list = append(list, fmt.Sprintf("%s to %s (taken %s before the kill)", d.tok, d.rcpt, d.before.Round(10*time.Microsecond)))
			}
			t.Errorf("the crash ending daemon run %d duplicated %d copies, more than delivery.concurrency (%d) can leave unrecorded: %s",
				crash, len(ds), concurrency, strings.Join(list, "; "))
		}
	}

	count := map[postOutcome]int{}
	delivered := 0
	tokens := make([]string, 0, len(posts))
	for tok := range posts {
		tokens = append(tokens, tok)
	}
	sort.Strings(tokens)
	for _, tok := range tokens {
		cp := posts[tok]
		count[cp.outcome]++
		got := map[string]int{}
		for pr, runs := range runsOf {
			if pr.tok == tok {
				got[pr.rcpt] = len(runs)
				if !isMember(members, pr.rcpt) {
					t.Errorf("%s was sent to %s, who is not a member", tok, pr.rcpt)
				}
			}
		}
		reached := 0
		for _, m := range members {
			if got[m] > 0 {
				reached++
			}
		}
		if reached > 0 {
			delivered++
		}
		switch {
		case cp.outcome == postAccepted && reached < len(members):
			t.Errorf("%s got %q but reached only %d of %d members: %v", tok, cp.reply, reached, len(members), got)
		case (cp.outcome == postRefused || cp.outcome == postNotSent) && reached > 0:
			t.Errorf("%s was %s (%q) yet reached %d members", tok, cp.outcome, cp.reply, reached)
		case cp.outcome == postUnknown && reached > 0 && reached < len(members):
			t.Errorf("%s (no reply: %q) reached %d of %d members: stored without all its copies", tok, cp.reply, reached, len(members))
		}
	}
	for pr := range runsOf {
		if posts[pr.tok] == nil {
			t.Errorf("copies of %s, which was never posted", pr.tok)
		}
	}
	t.Logf("posts: %d accepted, %d unanswered (%d of them delivered), %d refused, %d not sent; %d of all delivered",
		count[postAccepted], count[postUnknown], delivered-count[postAccepted], count[postRefused], count[postNotSent], delivered)
	t.Logf("kills: %v", stats.how)
	t.Logf("duplicates: %d after %d crashes; %d crashes duplicated a copy, at most %d copies in one crash (delivery.concurrency %d), at most %d to one member in one crash (%d crashes duplicated more than one copy to a member); a duplicated copy had been taken by the relay at most %s before its kill; most copies of one post to one member: %d",
		dups, rounds, len(dupsByCrash), maxPerCrash, concurrency, maxPerMember, crashesPerMember, maxBefore.Round(10*time.Microsecond), maxPerPair)
	// Each after-250 round saw at least one 250.
	if count[postAccepted] < stats.modes[killAfter250] {
		t.Errorf("only %d posts were accepted in %d rounds: the test proves little", count[postAccepted], rounds)
	}
	// The daemons' logs: no error, no panic, no race (under -race, the
	// daemon is the race-enabled test binary too).
	races := 0
	for i, p := range procs {
		log := p.stderr.String()
		if a := strings.Index(log, "WARNING: DATA RACE"); a >= 0 {
			if races++; races == 1 {
				b := strings.Index(log[a:], "\n==================")
				if b < 0 {
					b = len(log) - a
				}
				t.Errorf("daemon run %d reported a data race:\n%s", i, log[a:a+b])
			} else {
				t.Errorf("daemon run %d reported a data race too", i)
			}
			continue
		}
		for _, line := range strings.Split(log, "\n") {
			if strings.Contains(line, "level=ERROR") || strings.Contains(line, "panic") {
				t.Errorf("daemon run %d logged: %s", i, line)
			}
		}
	}
}

type crashMode string

const (
	killAfterDot       crashMode = "after-dot"        // intake: after the final dot, before the reply
	killAfterRelayTook crashMode = "after-relay-took" // fan-out: after the relay took a copy
	killAfter250       crashMode = "after-250"        // right after a 250
	killAtRandomTime   crashMode = "at-a-random-time" // 0-400 ms after the start
)

type postOutcome string

const (
	postAccepted postOutcome = "accepted"   // 250 to DATA
	postRefused  postOutcome = "refused"    // 4xx or 5xx to DATA
	postUnknown  postOutcome = "unanswered" // the final dot was sent, no reply came
	postNotSent  postOutcome = "not sent"   // the session broke before the message was sent
)

type crashPost struct {
	token   string
	round   int
	outcome postOutcome
	reply   string
}

// crashKill kills one daemon's process group once, and never after the
// round is over (the process id may be reused by then).
type crashKill struct {
	pgid   int
	mu     sync.Mutex
	done   bool   // killed or round over
	how    string // what triggered the kill ("": not killed)
	at     time.Time
	killed atomic.Bool
}

func (k *crashKill) kill(how string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.done {
		return
	}
	k.done, k.how, k.at = true, how, time.Now()
	k.killed.Store(true)
	syscall.Kill(-k.pgid, syscall.SIGKILL) //nolint:errcheck
}

func (k *crashKill) fired() bool { return k.killed.Load() }

// close ends the round: no kill after it. It returns what triggered the
// kill, if one came.
func (k *crashKill) close() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.done = true
	return k.how
}

// crashHooks run in the sender's goroutine: after the final dot is
// written (before the reply is read), and after a 250.
type crashHooks struct {
	afterDot, after250 func()
}

// crashSend sends msg as a member's mail server would, byte by byte under
// the test's control so that a kill can land between the final dot and
// the reply.
func crashSend(addr, helo, from string, msg []byte, h crashHooks) (postOutcome, string) {
	c, greeting, err := testmail.DialRaw(addr)
	if err != nil {
		return postNotSent, err.Error()
	}
	defer c.Close()
	if !strings.HasPrefix(greeting, "220") {
		return postNotSent, greeting
	}
	for _, cmd := range []string{"EHLO " + helo, "MAIL FROM:<" + from + ">", "RCPT TO:<" + listAddr + ">", "DATA"} {
		r, err := c.Cmd("%s", cmd)
		if err != nil {
			return postNotSent, cmd + ": " + err.Error()
		}
		if want := map[bool]string{true: "354", false: "250"}[cmd == "DATA"]; !strings.HasPrefix(r, want) {
			return postNotSent, cmd + ": " + r
		}
	}
	data := bytes.ReplaceAll(msg, []byte("\r\n."), []byte("\r\n.."))
	if !bytes.HasSuffix(data, []byte("\r\n")) {
		data = append(data, "\r\n"...)
	}
	if err := c.Write(append(data, ".\r\n"...)); err != nil {
		// Some of it may have gone out, the final dot with it.
		return postUnknown, "writing the message: " + err.Error()
	}
	if h.afterDot != nil {
		h.afterDot()
	}
	r, err := c.Reply()
	switch {
	case err != nil:
		return postUnknown, err.Error()
	case strings.HasPrefix(r, "250"):
		if h.after250 != nil {
			h.after250()
		}
		c.Cmd("QUIT") //nolint:errcheck
		return postAccepted, r
	default:
		return postRefused, r
	}
}

func isMember(members []string, addr string) bool {
	for _, m := range members {
		if strings.EqualFold(m, addr) {
			return true
		}
	}
	return false
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// The crash rounds' daemons reported a data race right after a start, when
// two posts arrived together: every copy's Autocrypt header comes from the
// one cached list key (compose.Keyring), and the first calls of
// ListKey.PublicBytes serialized its signatures, which go-crypto's
// Signature.Serialize lazily writes to (fixed in pgp/listkey.go:
// serialized once, under a lock). This is that race without the daemon,
// for -race.
func TestListKeyPublicBytesConcurrently(t *testing.T) {
	priv, err := pgp.GenerateListKey("Energy ISAC", listAddr, "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	k, err := pgp.LoadListKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			if _, err := k.PublicBytes(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}
