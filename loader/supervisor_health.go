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
	s.failures = append(s.failures, time.Now())
	s.mu.Unlock()
	s.log.Error("backend plugin died", "plugin", inst.spec.Name, "pid", inst.pid, "epoch", inst.epoch, "cause", cause)
	inst.cancel(cause)
	s.wg.Add(1)
	go s.recover(inst)
}

// recover reaps a dead plugin and brings up its replacement.
func (s *Supervisor) recover(dead *instance) {
	defer s.wg.Done()
	dead.stop(false)
	s.setLastErrors(dead)
	inst, err := s.bringUp(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		if !s.closed {
			s.failed = fmt.Errorf("%w: %w", backends.ErrBackendCrashed, err)
			s.log.Error("backend plugin could not be restarted", "error", err)
		}
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

// watchPing pings inst periodically and declares it dead when it exits
// or stops answering.
func (s *Supervisor) watchPing(inst *instance) {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
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
		if err != nil && inst.ctx.Err() == nil {
			s.markDead(inst, fmt.Errorf("ping: %w", err))
			return
		}
	}
}
