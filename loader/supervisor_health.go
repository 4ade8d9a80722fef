// Liveness: a dead connection or failed ping marks the plugin dead and starts recovery.

package loader

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/connectivity"

	"github.com/realmrt/realm/backends"
)

// markDead takes inst out of service (once) and starts its recovery.
func (s *Supervisor) markDead(inst *instance, cause error) {
	s.mu.Lock()
	if s.cur != inst || s.closed {
		s.mu.Unlock()
		return
	}
	s.cur = nil
	s.ready = make(chan struct{})
	clear(s.sessions)
	if time.Since(inst.began) > s.cfg.RestartWindow {
		s.breakers[inst.idx].trips = 0 // it ran well for a while
	}
	s.recordFailure(inst.idx, cause)
	s.mu.Unlock()
	s.log.Error("backend plugin died", "plugin", inst.spec.Name, "pid", inst.pid, "epoch", inst.epoch, "cause", cause)
	inst.cancel(cause)
	s.wg.Add(1)
	go s.recover(inst)
}

// recover reaps a dead plugin and brings up its replacement, retrying
// for as long as the supervisor lives.
func (s *Supervisor) recover(dead *instance) {
	defer s.wg.Done()
	dead.stop(false)
	s.setLastErrors(dead)
	inst, err := s.bringUp(true, false)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil { // closed
		closeReady(s.ready)
		return
	}
	if s.closed {
		inst.cancel(ErrClosed)
		s.mu.Unlock()
		inst.stop(true)
		s.mu.Lock()
		return
	}
	s.restarts++
	s.log.Info("backend plugin restarted", "plugin", inst.spec.Name, "pid", inst.pid, "epoch", inst.epoch, "restarts", s.restarts)
	s.install(inst)
}

// watchConn declares inst dead as soon as its gRPC connection leaves
// the Ready state: a local plugin's connection only breaks when the
// process goes away.
func (s *Supervisor) watchConn(inst *instance) {
	defer s.wg.Done()
	for {
		st := inst.conn.GetState()
		if st != connectivity.Ready {
			s.markDead(inst, fmt.Errorf("connection to plugin lost (%s)", st))
			return
		}
		if !inst.conn.WaitForStateChange(inst.ctx, st) {
			return
		}
	}
}

// watchPing pings inst periodically and declares it hung after
// PingFailures failed pings in a row. A ping that fails while the
// process lives and the connection is Ready is only a strike: the host
// itself may be too loaded to get the answer in time. An exited
// process is dead at once.
func (s *Supervisor) watchPing(inst *instance) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	strikes := 0
	for {
		select {
		case <-inst.ctx.Done():
			return
		case <-t.C:
		}
		if inst.client.Exited() {
			s.markDead(inst, errors.New("plugin process exited"))
			return
		}
		ctx, cancel := context.WithTimeout(inst.ctx, s.cfg.PingTimeout)
		err := inst.backend.Ping(ctx)
		cancel()
		if inst.ctx.Err() != nil {
			return
		}
		if err == nil {
			strikes = 0
			continue
		}
		strikes++
		if inst.client.Exited() {
			s.markDead(inst, fmt.Errorf("plugin process exited (ping: %w)", err))
			return
		}
		if strikes < s.cfg.PingFailures && inst.conn.GetState() == connectivity.Ready {
			s.log.Warn("backend plugin ping failed; not yet taken for hung", "plugin", inst.spec.Name, "pid", inst.pid,
				"failures", strikes, "of", s.cfg.PingFailures, "error", err)
			continue
		}
		s.markDead(inst, fmt.Errorf("%d pings in a row failed (each waited %v): %w", strikes, s.cfg.PingTimeout, err))
		return
	}
}

// watchPreferred gives a more preferred plugin back its place: while a
// fallback serves, it starts the most preferred plugin whose breaker
// has closed again and, once the fallback is idle (no call in flight,
// no open session), hands over to it.
func (s *Supervisor) watchPreferred() {
	defer s.wg.Done()
	for {
		s.mu.Lock()
		period := s.cfg.Cooldown
		cur := s.cur
		idx := -1
		if cur != nil && cur.idx > 0 {
			idx, _ = s.pick(cur.idx)
			if idx >= 0 && (len(s.sessions) > 0 || cur.inflight.Load() > 0) {
				idx, period = -1, s.cfg.PingInterval // busy: look again soon
			}
		}
		s.mu.Unlock()
		if idx >= 0 {
			s.failBack(cur, idx)
			period = s.cfg.PingInterval
		}
		if !s.sleep(min(period, s.cfg.PingInterval)) {
			return
		}
	}
}

// failBack starts Plugins[idx] and makes it the live plugin in place
// of old if old is still live and idle once it is ready.
func (s *Supervisor) failBack(old *instance, idx int) {
	inst, err := s.start(idx)
	var res map[backends.ModelID]reloaded
	if err == nil {
		res, err = s.loadAll(inst)
		if err != nil {
			inst.cancel(err)
			inst.stop(false)
		}
	}
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn("preferred backend plugin still fails", "plugin", s.cfg.Plugins[idx].Name, "error", err)
			s.mu.Lock()
			b := &s.breakers[idx]
			b.lastErr, b.lastAt = err, time.Now()
			s.trip(idx, err)
			s.mu.Unlock()
		}
		return
	}
	s.mu.Lock()
	swap := !s.closed && s.cur == old && len(s.sessions) == 0 && old.inflight.Load() == 0
	for id := range s.models {
		if _, ok := res[id]; !ok {
			swap = false // loaded meanwhile: not in the new process
		}
	}
	if !swap {
		s.mu.Unlock()
		inst.cancel(errors.New("not needed"))
		inst.stop(true)
		return
	}
	orphans := s.commitLocked(inst, res)
	s.breakers[idx] = breaker{}
	s.cur = nil
	s.install(inst)
	s.mu.Unlock()
	s.unloadOrphans(inst, orphans)
	s.log.Info("backend plugin back to the preferred one", "plugin", inst.spec.Name, "pid", inst.pid, "from", old.spec.Name)
	old.cancel(errRetired)
	old.stop(true)
}

// errRetired ends a fallback plugin that a preferred one replaced.
var errRetired = errors.New("replaced by a preferred backend plugin")
