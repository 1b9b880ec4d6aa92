/*
 * http: libcurl's multi-socket interface on libev (see ev/http.h).
 *
 * libcurl tells us which sockets to watch (socket callback: one ev_io each, found again through
 * curl_multi_assign) and when it next needs the clock (timer callback: one ev_timer); both feed
 * curl_multi_socket_action(). Neither libcurl callback does more than adjust watchers: libcurl
 * calls them from inside curl_multi_add_handle, _remove_handle, _socket_action and _cleanup,
 * where nothing else may be touched.
 *
 * Invariants: a request is on exactly one list. `running`: its easy handle is in the multi
 * handle. `finished`: libcurl is done with it (removed from the multi handle) and its owner has
 * not been told yet. Owners are told only from deliver(), which runs after
 * curl_multi_socket_action() has returned, takes one request off `finished` at a time and frees
 * it after the callback: so a callback may start requests (they join `running`) or cancel any
 * (they leave either list and are freed) without disturbing the delivery in progress.
 *
 * A streamed request is also on `fresh` while it holds bytes its owner has not been offered.
 * deliver() offers them before telling anyone of an end, so a stream's last bytes come before
 * its done callback. The request being offered bytes is `in_hand`: cancelling it from its own
 * data callback only marks it, and deliver() frees it once the callback has returned.
 */
#include "ev/http.h"

#include <curl/curl.h>
#include <ev.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/list.h"
#include "core/log.h"
#include "ev/loop.h"

/* Seconds a stream's connection may stay silent before keepalive probes, and between them. */
#define STREAM_KEEPIDLE 10L
#define STREAM_KEEPINTVL 5L

struct http_sock {
	ev_io io;
	struct http *h;
	struct list_node node; /* in h->socks */
};

struct http_req {
	struct list_node node;  /* in h->running or h->finished */
	struct list_node fresh; /* in h->fresh: a stream with bytes not offered yet */
	struct http *http;
	CURL *easy;
	http_done_fn fn;
	http_data_fn data_fn; /* a stream's; NULL for a collected response */
	void *arg;
	struct curl_slist *headers; /* request headers (a POST's content type) */
	char *body;                 /* NUL-terminated once anything arrived */
	size_t len, cap, max;       /* max: the cap on len */
	bool cancelled;             /* cancelled while in hand: deliver() frees it */
	bool paused;                /* a stream waiting for its owner to make room */
	bool collected;             /* libcurl is done with it: on `finished` */
	bool too_large;             /* the body passed max */
	bool no_memory;             /* the body could not grow */
	CURLcode result;
	char errbuf[CURL_ERROR_SIZE];     /* libcurl's detailed text */
	char error[CURL_ERROR_SIZE + 64]; /* what the owner is told */
};

struct http {
	struct evloop *loop;
	CURLM *multi;
	ev_timer timer;            /* libcurl's timeout */
	struct list_node socks;    /* struct http_sock, every socket watched for libcurl */
	struct list_node running;  /* struct http_req */
	struct list_node finished; /* struct http_req */
	struct list_node fresh;    /* struct http_req, by their fresh node */
	struct http_req *in_hand;  /* the stream whose data callback runs */
	bool freeing;              /* in http_free: libcurl callbacks only tear down */
	bool loop_alive;           /* false in http_free after the loop is gone: no ev_* calls */
	int delivering;            /* > 0 while an owner's callback runs */
};

static void free_req(struct http_req *r)
{
	list_del(&r->fresh);
	if (r->easy)
		curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->headers);
	free(r->body);
	free(r);
}

/* Stop watching a socket and forget it. */
static void sock_free(struct http *h, struct http_sock *s)
{
	if (h->loop_alive)
		ev_io_stop(h->loop->ev, &s->io);
	list_del(&s->node);
	free(s);
}

static void deliver(struct http *h);
static void collect(struct http *h);

static void on_io(struct ev_loop *ev, ev_io *w, int revents)
{
	struct http_sock *s = w->data;
	struct http *h = s->h;
	int flags = 0, running;
	CURLMcode rc;

	if (revents & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (revents & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	if (revents & EV_ERROR)
		flags |= CURL_CSELECT_ERR;
	/* libcurl may close this socket inside the call, which frees s: touch only h after it. */
	rc = curl_multi_socket_action(h->multi, w->fd, flags, &running);
	if (rc != CURLM_OK)
		log_warning("http: %s", curl_multi_strerror(rc));
	collect(h);
	deliver(h);
}

static void on_timer(struct ev_loop *ev, ev_timer *w, int revents)
{
	struct http *h = w->data;
	int running;
	CURLMcode rc;

	rc = curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	if (rc != CURLM_OK)
		log_warning("http: %s", curl_multi_strerror(rc));
	collect(h);
	deliver(h);
}

/* libcurl: watch fd for what (or stop watching it). Returning -1 fails every transfer. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http *h = userp;
	struct http_sock *s = socketp;
	int events = 0;

	if (what == CURL_POLL_REMOVE || h->freeing) {
		if (s) {
			sock_free(h, s);
			curl_multi_assign(h->multi, fd, NULL);
		}
		return 0;
	}
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s) {
			log_error("http: out of memory watching a socket");
			return -1;
		}
		s->h = h;
		ev_init(&s->io, on_io);
		s->io.data = s;
		list_add_tail(&h->socks, &s->node);
		curl_multi_assign(h->multi, fd, s);
	}
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	ev_io_stop(h->loop->ev, &s->io);
	ev_io_set(&s->io, fd, events);
	ev_io_start(h->loop->ev, &s->io);
	return 0;
}

/* libcurl: call curl_multi_socket_action(CURL_SOCKET_TIMEOUT) in timeout_ms (-1: never). */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct http *h = userp;

	if (h->freeing)
		return 0;
	ev_timer_stop(h->loop->ev, &h->timer);
	/* 0 means "as soon as possible": from the loop, since we are inside a libcurl call now. */
	if (timeout_ms >= 0) {
		ev_timer_set(&h->timer, (double)timeout_ms / 1000.0, 0.);
		ev_timer_start(h->loop->ev, &h->timer);
	}
	return 0;
}

/* libcurl: response bytes. Returning less than given aborts the transfer. */
static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct http_req *r = userdata;
	size_t n = size * nmemb;

	if (n > r->max - r->len) {
		/* A stream waits for its owner to consume (offer() resumes it); the rest fail. */
		if (r->data_fn && r->len) {
			r->paused = true;
			/*
			 * Offered again even if the owner saw these bytes already: only an offer
			 * resumes the stream, or ends it as too large when nothing can be taken.
			 */
			if (list_empty(&r->fresh))
				list_add_tail(&r->http->fresh, &r->fresh);
			return CURL_WRITEFUNC_PAUSE;
		}
		r->too_large = true;
		return 0;
	}
	if (r->len + n + 1 > r->cap) {
		size_t cap = r->cap ? r->cap : 4096;
		char *body;

		while (cap < r->len + n + 1)
			cap *= 2;
		/* The cap plus its NUL is as large as a body can be. */
		if (cap > r->max + 1)
			cap = r->max + 1;
		body = realloc(r->body, cap);
		if (!body) {
			r->no_memory = true;
			return 0;
		}
		r->body = body;
		r->cap = cap;
	}
	memcpy(r->body + r->len, ptr, n);
	r->len += n;
	r->body[r->len] = '\0';
	/* Only noted here, inside libcurl: the owner is offered the bytes from deliver(). */
	if (r->data_fn && list_empty(&r->fresh) && n)
		list_add_tail(&r->http->fresh, &r->fresh);
	return n;
}

/*
 * Take every transfer libcurl has finished off the multi handle and queue it for deliver().
 * Each message's fields are read before curl_multi_remove_handle, which ends their life.
 */
static void collect(struct http *h)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(h->multi, &left))) {
		CURL *easy = msg->easy_handle;
		struct http_req *r;
		char *priv = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
		r = (struct http_req *)priv;
		r->result = msg->data.result;
		r->collected = true;
		curl_multi_remove_handle(h->multi, easy);
		list_del(&r->node);
		list_add_tail(&h->finished, &r->node);
	}
}

/* The system's reason, for errors where libcurl's own text leaves it out ("refused"). */
static bool wants_errno(CURLcode result)
{
	return result == CURLE_COULDNT_CONNECT || result == CURLE_SEND_ERROR ||
	       result == CURLE_RECV_ERROR;
}

/* What went wrong with a finished request, or NULL; in r->error when composed. */
static const char *describe_error(struct http_req *r)
{
	long os_errno = 0;
	size_t len;

	if (r->too_large || r->result == CURLE_FILESIZE_EXCEEDED)
		return "response too large";
	if (r->no_memory)
		return "out of memory";
	if (r->result == CURLE_OK)
		return NULL;
	snprintf(r->error, sizeof(r->error), "%s",
		 r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->result));
	/* libcurl's texts may end in a space or newline: log lines stay one clean line. */
	len = strlen(r->error);
	while (len && (r->error[len - 1] == ' ' || r->error[len - 1] == '\n'))
		r->error[--len] = '\0';
	curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &os_errno);
	if (wants_errno(r->result) && os_errno > 0)
		snprintf(r->error + len, sizeof(r->error) - len, " (%s)", strerror((int)os_errno));
	return r->error;
}

static void finish(struct http_req *r)
{
	const char *error = describe_error(r);
	long status = 0;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	if (error || r->data_fn)
		r->fn(r->arg, (int)status, "", 0, error);
	else
		r->fn(r->arg, (int)status, r->body ? r->body : "", r->len, NULL);
}

/* Drop the first used bytes of a stream's buffer; an idle large buffer is given back. */
static void consume(struct http_req *r, size_t used)
{
	if (used > r->len)
		used = r->len;
	memmove(r->body, r->body + used, r->len - used);
	r->len -= used;
	r->body[r->len] = '\0';
	if (r->len == 0 && r->cap > 65536) {
		free(r->body);
		r->body = NULL;
		r->cap = 0;
	}
}

/*
 * A paused stream: resume it when its owner made room (libcurl hands the held bytes over again,
 * maybe at once, which puts it back on `fresh`); when the owner took nothing from a full buffer,
 * what waits can never fit, so it ends as too large.
 */
static void resume(struct http *h, struct http_req *r, size_t used)
{
	r->paused = false;
	if (used && curl_easy_pause(r->easy, CURLPAUSE_CONT) == CURLE_OK)
		return;
	r->too_large = true;
	r->result = CURLE_WRITE_ERROR;
	if (r->collected)
		return; /* on `finished` already */
	curl_multi_remove_handle(h->multi, r->easy);
	list_del(&r->node);
	list_add_tail(&h->finished, &r->node);
}

/* Offer a stream's unconsumed bytes to its owner (see the invariants above). */
static void offer(struct http *h, struct http_req *r)
{
	long status = 0;
	size_t used;

	curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
	h->in_hand = r;
	used = r->data_fn(r->arg, (int)status, r->body, r->len);
	h->in_hand = NULL;
	if (r->cancelled) {
		free_req(r);
		return;
	}
	consume(r, used);
	if (r->paused)
		resume(h, r, used);
}

/* Offer streamed bytes, then tell the owners of finished requests, one at a time. */
static void deliver(struct http *h)
{
	struct list_node *n;

	h->delivering++;
	while ((n = list_first(&h->fresh))) {
		list_del(n);
		offer(h, list_entry(n, struct http_req, fresh));
	}
	while ((n = list_first(&h->finished))) {
		struct http_req *r = list_entry(n, struct http_req, node);

		list_del(n);
		finish(r);
		free_req(r);
	}
	h->delivering--;
}

static bool set_str(CURL *easy, CURLoption opt, const char *value)
{
	if (!value || !*value)
		return true;
	return curl_easy_setopt(easy, opt, value) == CURLE_OK;
}

/* Authentication and TLS settings from o. libcurl copies every string. */
static bool set_auth_tls(CURL *easy, const struct http_opts *o)
{
	bool ok = true;

	if (o->username && *o->username) {
		ok = ok && curl_easy_setopt(easy, CURLOPT_USERNAME, o->username) == CURLE_OK;
		ok = ok && curl_easy_setopt(easy, CURLOPT_PASSWORD,
					    o->password ? o->password : "") == CURLE_OK;
		ok = ok &&
		     curl_easy_setopt(easy, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC) == CURLE_OK;
	}
	ok = ok && set_str(easy, CURLOPT_CAINFO, o->ca_file);
	ok = ok && set_str(easy, CURLOPT_SSLCERT, o->cert_file);
	ok = ok && set_str(easy, CURLOPT_SSLKEY, o->key_file);
	ok = ok && curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, o->verify ? 1L : 0L) == CURLE_OK;
	ok = ok && curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, o->verify ? 2L : 0L) == CURLE_OK;
	return ok;
}

/* Seconds to libcurl's milliseconds, at least 1 (0 would mean none) and without overflow. */
static long timeout_ms(double seconds)
{
	double ms = seconds * 1000.0 + 0.5;

	if (ms < 1)
		return 1;
	return ms > (double)INT_MAX ? INT_MAX : (long)ms;
}

static bool set_collected(CURL *easy, struct http_req *r, const struct http_opts *o);
static bool set_stream(CURL *easy, const struct http_opts *o);

static bool set_options(struct http_req *r, const char *url, const struct http_opts *o)
{
	CURL *easy = r->easy;
	bool ok = true;

	ok = ok && curl_easy_setopt(easy, CURLOPT_URL, url) == CURLE_OK;
	ok = ok && curl_easy_setopt(easy, CURLOPT_PRIVATE, r) == CURLE_OK;
	ok = ok && curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_data) == CURLE_OK;
	ok = ok && curl_easy_setopt(easy, CURLOPT_WRITEDATA, r) == CURLE_OK;
	ok = ok && curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, r->errbuf) == CURLE_OK;
	/* Without this, libcurl may use alarm() for DNS timeouts: a signal in our process. */
	ok = ok && curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	/* A redirect would take credentials and trust to a server nobody configured. */
	ok = ok && curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
	ok = ok && curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
#else
	ok = ok && curl_easy_setopt(easy, CURLOPT_PROTOCOLS,
				    (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS)) == CURLE_OK;
#endif
	/* "" overrides http_proxy and friends: the daemon's environment must not reroute it. */
	ok = ok && curl_easy_setopt(easy, CURLOPT_PROXY, "") == CURLE_OK;
	ok = ok && curl_easy_setopt(easy, CURLOPT_USERAGENT, "pgmux") == CURLE_OK;
	return ok && (r->data_fn ? set_stream(easy, o) : set_collected(easy, r, o)) &&
	       set_auth_tls(easy, o);
}

/* A response collected whole: bounded in size and, when asked, in time. */
static bool set_collected(CURL *easy, struct http_req *r, const struct http_opts *o)
{
	bool ok = true;

	/* Fail early when the server announces a larger body; on_data guards the rest. */
	ok = ok &&
	     curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max) == CURLE_OK;
	if (o->timeout > 0)
		ok = ok &&
		     curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms(o->timeout)) == CURLE_OK;
	return ok;
}

/*
 * A stream has no end to wait for: the timeout bounds connecting, and keepalive probes end it
 * when the peer vanished without closing (a silent watch is normal, so no idle limit).
 */
static bool set_stream(CURL *easy, const struct http_opts *o)
{
	bool ok = true;

	if (o->timeout > 0)
		ok = ok && curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
					    timeout_ms(o->timeout)) == CURLE_OK;
	ok = ok && curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L) == CURLE_OK;
	ok = ok && curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, STREAM_KEEPIDLE) == CURLE_OK;
	ok = ok && curl_easy_setopt(easy, CURLOPT_TCP_KEEPINTVL, STREAM_KEEPINTVL) == CURLE_OK;
	return ok;
}

/* A JSON request body, copied by libcurl; "Expect:" keeps libcurl from waiting for a 100. */
static bool set_post(struct http_req *r, const char *body, size_t len)
{
	CURL *easy = r->easy;
	struct curl_slist *l;

	l = curl_slist_append(NULL, "Content-Type: application/json");
	if (!l)
		return false;
	r->headers = l;
	if (!(l = curl_slist_append(r->headers, "Expect:")))
		return false;
	r->headers = l;
	return curl_easy_setopt(easy, CURLOPT_HTTPHEADER, r->headers) == CURLE_OK &&
	       curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len) == CURLE_OK &&
	       curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body) == CURLE_OK;
}

/* libcurl's global state, set up once for the process and never torn down. */
static bool global_init(void)
{
	static bool done;

	if (done)
		return true;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return false;
	done = true;
	return true;
}

struct http *http_new(struct evloop *loop)
{
	struct http *h;

	if (!global_init())
		return NULL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->multi = curl_multi_init();
	if (!h->multi) {
		free(h);
		return NULL;
	}
	h->loop = loop;
	h->loop_alive = true;
	list_init(&h->socks);
	list_init(&h->running);
	list_init(&h->finished);
	list_init(&h->fresh);
	ev_init(&h->timer, on_timer);
	h->timer.data = h;
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

/* Start a request; body NULL: a GET. data NULL: the response is collected whole. */
static bool start(struct http *h, const char *url, const char *body, size_t len,
		  const struct http_opts *o, http_data_fn data, http_done_fn fn, void *arg)
{
	struct http_req *r = calloc(1, sizeof(*r));

	if (!r)
		return false;
	list_init(&r->fresh);
	r->http = h;
	r->fn = fn;
	r->data_fn = data;
	r->arg = arg;
	r->max = o->max_body ? o->max_body : HTTP_MAX_BODY;
	r->easy = curl_easy_init();
	if (!r->easy || !set_options(r, url, o) || (body && !set_post(r, body, len))) {
		free_req(r);
		return false;
	}
	/* Adding only arms the timer (at 0): the transfer starts, and ends, from the loop. */
	if (curl_multi_add_handle(h->multi, r->easy) != CURLM_OK) {
		free_req(r);
		return false;
	}
	list_add_tail(&h->running, &r->node);
	return true;
}

bool http_get(struct http *h, const char *url, const struct http_opts *o, http_done_fn fn,
	      void *arg)
{
	return start(h, url, NULL, 0, o, NULL, fn, arg);
}

bool http_post(struct http *h, const char *url, const char *body, size_t len,
	       const struct http_opts *o, http_done_fn fn, void *arg)
{
	return start(h, url, body ? body : "", body ? len : 0, o, NULL, fn, arg);
}

bool http_stream(struct http *h, const char *url, const char *body, size_t len,
		 const struct http_opts *o, http_data_fn data, http_done_fn done, void *arg)
{
	return start(h, url, body, len, o, data, done, arg);
}

/* Off its list and gone; the one in hand is only marked (offer() frees it). */
static void drop(struct http *h, struct http_req *r)
{
	list_del(&r->node);
	list_del(&r->fresh);
	if (r != h->in_hand) {
		free_req(r);
		return;
	}
	r->cancelled = true;
}

void http_cancel(struct http *h, void *arg)
{
	struct list_node *n, *t;

	list_for_each_safe(n, t, &h->running) {
		struct http_req *r = list_entry(n, struct http_req, node);

		if (r->arg != arg || r->cancelled)
			continue;
		curl_multi_remove_handle(h->multi, r->easy);
		drop(h, r);
	}
	list_for_each_safe(n, t, &h->finished) {
		struct http_req *r = list_entry(n, struct http_req, node);

		if (r->arg == arg && !r->cancelled)
			drop(h, r);
	}
}

void http_free(struct http *h, bool loop_alive)
{
	struct list_node *n;

	if (!h)
		return;
	/* Freed from an owner's callback, deliver() would go on with a freed client. */
	ASSERT(!h->delivering);
	h->freeing = true;
	h->loop_alive = loop_alive;
	if (loop_alive)
		ev_timer_stop(h->loop->ev, &h->timer);
	while ((n = list_first(&h->running))) {
		struct http_req *r = list_entry(n, struct http_req, node);

		list_del(n);
		curl_multi_remove_handle(h->multi, r->easy);
		free_req(r);
	}
	while ((n = list_first(&h->finished))) {
		list_del(n);
		free_req(list_entry(n, struct http_req, node));
	}
	list_init(&h->fresh); /* its requests are all freed */
	/* Closing cached connections calls on_curl_socket, which needs h still. */
	curl_multi_cleanup(h->multi);
	while ((n = list_first(&h->socks)))
		sock_free(h, list_entry(n, struct http_sock, node));
	free(h);
}

void http_library_version(char *buf, size_t len)
{
	snprintf(buf, len, "libcurl %s", curl_version_info(CURLVERSION_NOW)->version);
}
