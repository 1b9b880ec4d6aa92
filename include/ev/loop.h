/*
 * loop: the event loop and the work it defers to the end of each iteration.
 *
 * Callbacks never free objects or deliver close events re-entrantly: they queue work here, and the
 * loop's prepare phase (before it sleeps) runs it: resumed connections are processed, failed ones
 * reported to their owner, pending output flushed, parked objects freed. So an object that a
 * callback touched stays valid until that callback has returned.
 */
#ifndef PGMUX_EV_LOOP_H
#define PGMUX_EV_LOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/list.h"

struct ev_loop;
struct conn;

typedef void (*evloop_free_fn)(void *obj);
typedef void (*evloop_timer_fn)(void *arg);
typedef void (*evloop_signal_fn)(void *arg, int signum);

/*
 * TCP options of every socket pgmux opens or accepts (not unix sockets). Keepalive and the
 * user timeout are what notice a peer that vanished without a FIN or RST (a host powered off,
 * a firewall dropping state) while pgmux waits on it; 0 keeps the operating system's value.
 */
struct evloop_tcp {
	bool keepalive;
	int keepidle;     /* seconds idle before the first probe */
	int keepintvl;    /* seconds between probes */
	int keepcnt;      /* unanswered probes before the connection is dropped */
	int user_timeout; /* ms sent data may stay unacknowledged (TCP_USER_TIMEOUT) */
};

struct evloop {
	struct ev_loop *ev;
	void *prepare_watcher;        /* ev_prepare, hidden from non-ev code */
	struct list_node resume_list; /* conns whose buffered input must be processed */
	struct list_node failed_list; /* conns whose failure the owner must hear of */
	struct list_node dirty_list;  /* conns with output not yet written */
	struct list_node park_list;   /* objects to free once the iteration ends */
	uint32_t buf_size;            /* size of pooled I/O buffers (pkt_buf) */
	struct evloop_tcp tcp;        /* for sockets opened from now on (evloop_set_tcp) */
	void **free_bufs;             /* pooled buffers of buf_size bytes */
	size_t n_free_bufs, max_free_bufs;
	size_t bufs_in_use;
	struct list_node signals; /* signal watchers, freed with the loop */
};

struct evloop_timer {
	void *watcher; /* ev_timer */
	evloop_timer_fn fn;
	void *arg;
};

bool evloop_init(struct evloop *l, uint32_t buf_size);
void evloop_destroy(struct evloop *l);
void evloop_run(struct evloop *l);
void evloop_break(struct evloop *l);

/* Free obj with fn once this loop iteration's callbacks have returned. */
void evloop_park(struct evloop *l, void *obj, evloop_free_fn fn);

/* A repeating timer (interval seconds). */
bool evloop_timer_start(struct evloop *l, struct evloop_timer *t, double interval,
			evloop_timer_fn fn, void *arg);
void evloop_timer_stop(struct evloop *l, struct evloop_timer *t);

/* Call fn(arg, signum) from the loop when signum arrives. */
bool evloop_signal(struct evloop *l, int signum, evloop_signal_fn fn, void *arg);

/* I/O buffers of buf_size bytes from a free list. */
uint8_t *evloop_get_buf(struct evloop *l);
void evloop_put_buf(struct evloop *l, uint8_t *buf);
/* Change the pooled buffer size (RELOAD of pkt_buf): affects buffers taken from now on. */
void evloop_set_buf_size(struct evloop *l, uint32_t buf_size);

/* TCP options for sockets opened or accepted from now on; open ones keep theirs. */
void evloop_set_tcp(struct evloop *l, const struct evloop_tcp *tcp);

/* Run one pass of the deferred work (also called by the prepare watcher). */
void evloop_run_deferred(struct evloop *l);

/* "libev MAJOR.MINOR" of the libev linked at run time, into buf (--version). */
void evloop_library_version(char *buf, size_t len);

#endif
