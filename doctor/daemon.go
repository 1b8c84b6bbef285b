package doctor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"

	"github.com/isaclist/isaclist/admin"
)

// checkDaemon also returns whether the daemon answers.
func (d *doctor) checkDaemon(ctx context.Context) (Check, bool) {
	c := Check{Name: "daemon"}
	var r struct {
		Hostname string `json:"hostname"`
	}
	_, err := d.call(ctx, "ping", "", nil, &r)
	if err != nil {
		c.Detail = oneLine(err.Error())
		switch {
		case errors.Is(err, admin.ErrNotRunning):
			c.State = Fail
			c.Fix = "start it: systemctl start isaclist (journalctl -u isaclist -n 50 says why it stopped)"
		case errors.Is(err, os.ErrPermission):
			c.State = Unknown
			c.Fix = "run doctor as root, as the daemon's user, or as a member of the admin group"
		default:
			c.State = Fail
			c.Fix = "journalctl -u isaclist -n 50; systemctl restart isaclist"
		}
		return c, false
	}
	if !strings.EqualFold(strings.TrimSuffix(r.Hostname, "."), strings.TrimSuffix(d.cfg.Hostname, ".")) {
		c.State = Warn
		c.Detail = fmt.Sprintf("the daemon answers on %s but runs with hostname %q, and this configuration says %q", d.cfg.Admin.Socket, r.Hostname, d.cfg.Hostname)
		c.Fix = "restart the daemon after changing the configuration (systemctl restart isaclist), or give doctor the daemon's --config"
		return c, true
	}
	c.State, c.Detail = Pass, fmt.Sprintf("the daemon answers on %s (hostname %s)", d.cfg.Admin.Socket, r.Hostname)
	return c, true
}

// loadLists asks the daemon for its lists (the one of Options.List), each
// with the DNS records it needs and its group-health warnings.
func (d *doctor) loadLists(ctx context.Context) (Check, []*listData) {
	var lists []*listData
	c := Check{Name: "lists"}
	if !d.daemonUp {
		c.State = Unknown
		c.Detail = "the daemon does not answer, so the lists, their DNS records, the queue and the group's health cannot be checked"
		c.Fix = "start the daemon, then run doctor again"
		return c, nil
	}
	var infos []admin.ListInfo
	if _, err := d.call(ctx, "list.all", "", nil, &infos); err != nil {
		c.State, c.Detail = Fail, "the daemon could not list its lists: "+oneLine(err.Error())
		c.Fix = "journalctl -u isaclist -n 50"
		return c, nil
	}
	var names []string
	for _, info := range infos {
		if d.o.List != "" && !strings.EqualFold(info.Address, d.o.List) {
			continue
		}
		l := &listData{info: info}
		l.warnings = info.Warnings
		lists = append(lists, l)
		names = append(names, info.Address)
	}
	sort.Slice(lists, func(i, j int) bool { return lists[i].info.Address < lists[j].info.Address })
	sort.Strings(names)
	for _, l := range lists {
		if ctx.Err() != nil {
			break
		}
		l.dnsErr = nil
		if _, err := d.call(ctx, "list.dns", l.info.Address, nil, &l.dns); err != nil {
			l.dnsErr = err
		}
		var info admin.ListInfo
		w, err := d.call(ctx, "list.show", l.info.Address, nil, &info)
		if err != nil {
			l.showErr = err
			continue
		}
		l.warnings = mergeWarnings(info.Warnings, w)
	}
	switch {
	case d.o.List != "" && len(lists) == 0:
		c.State, c.Detail = Fail, fmt.Sprintf("no list %s here (the daemon hosts %d)", d.o.List, len(infos))
		c.Fix = "isaclist list show names the hosted lists"
	case len(infos) == 0:
		c.State, c.Detail = Warn, "no list exists yet"
		c.Fix = `isaclist list create ADDRESS --name NAME, then publish its records (isaclist list dns ADDRESS)`
	default:
		c.State, c.Detail = Pass, fmt.Sprintf("%d list(s): %s", len(names), strings.Join(names, ", "))
	}
	return c, lists
}

func mergeWarnings(a, b []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, w := range append(append([]string{}, a...), b...) {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// checkHealthz asks the daemon's own health check (the metrics listener's
// /healthz), which knows about the store, the queue and the disk.
func (d *doctor) checkHealthz(ctx context.Context) []Check {
	addr := d.o.MetricsAddr
	if addr == "" {
		if d.cfg.Metrics.Listen == "" {
			return nil
		}
		var ok bool
		if addr, ok = loopbackFor(d.cfg.Metrics.Listen); !ok {
			return []Check{{Name: "healthz " + d.cfg.Metrics.Listen, State: Unknown,
				Detail: fmt.Sprintf("[metrics] listen %s: a random port, which doctor cannot know", d.cfg.Metrics.Listen)}}
		}
	}
	c := Check{Name: "healthz " + addr}
	url := "http://" + addr + "/healthz"
	client := &http.Client{Timeout: 2 * dialTimeout, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		c.State, c.Detail = Fail, err.Error()
		return []Check{c}
	}
	resp, err := client.Do(req)
	if err != nil {
		if !d.daemonUp {
			c.State, c.Detail = Unknown, fmt.Sprintf("%s does not answer; nor does the daemon", url)
			c.Fix = "start the daemon, then run doctor again"
			return []Check{c}
		}
		c.State, c.Detail = Fail, fmt.Sprintf("%s does not answer although the daemon runs: %s", url, shortErr(err))
		c.Fix = "restart the daemon after changing [metrics] listen (systemctl restart isaclist); journalctl -u isaclist -n 50"
		return []Check{c}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<10))
	lines := strings.Split(strings.TrimSpace(string(body)), "\n")
	switch {
	case resp.StatusCode == http.StatusOK:
		c.State, c.Detail = Pass, fmt.Sprintf("%s says %s", url, oneLine(lines[0]))
	case resp.StatusCode == http.StatusServiceUnavailable:
		problems := lines
		if len(problems) > 1 && strings.TrimSpace(problems[0]) == "unhealthy" {
			problems = problems[1:]
		}
		c.State, c.Detail = Fail, "the daemon reports itself unhealthy: "+strings.Join(problems, "; ")
		c.Fix = "act on each problem named; journalctl -u isaclist -n 100"
	default:
		c.State, c.Detail = Warn, fmt.Sprintf("%s answers %s: is [metrics] listen the isaclist daemon's?", url, resp.Status)
		c.Fix = "check [metrics] listen: ss -ltnp shows which program has the port"
	}
	return []Check{c}
}
