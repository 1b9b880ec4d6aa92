/*
 * settings: the structs that src/ev/ modules take, filled from the config's keys. ev/ never
 * reads the config itself; this is the one place that knows which key feeds which field.
 *
 * Invariant: the structs borrow the config's strings, so they live no longer than that config.
 */
#include "config/config.h"
#include "ev/tls.h"
#include "worker/worker.h"

void worker_tcp_settings(const struct config *cfg, struct evloop_tcp *out)
{
	*out = (struct evloop_tcp){
		.keepalive = cfg->tcp_keepalive,
		.keepidle = cfg->tcp_keepidle,
		.keepintvl = cfg->tcp_keepintvl,
		.keepcnt = cfg->tcp_keepcnt,
		.user_timeout = cfg->tcp_user_timeout,
	};
}

void worker_tls_settings(const struct config *cfg, enum tls_side side, struct tls_settings *out)
{
	if (side == TLS_SIDE_CLIENTS) {
		*out = (struct tls_settings){
			.mode = cfg->client_tls_sslmode,
			.key_file = cfg->client_tls_key_file,
			.cert_file = cfg->client_tls_cert_file,
			.ca_file = cfg->client_tls_ca_file,
			.protocols = cfg->client_tls_protocols,
			.ciphers = cfg->client_tls_ciphers,
			.tls13_ciphers = cfg->client_tls13_ciphers,
			.dheparams = cfg->client_tls_dheparams,
			.ecdhcurve = cfg->client_tls_ecdhcurve,
		};
	} else {
		*out = (struct tls_settings){
			.mode = cfg->server_tls_sslmode,
			.key_file = cfg->server_tls_key_file,
			.cert_file = cfg->server_tls_cert_file,
			.ca_file = cfg->server_tls_ca_file,
			.protocols = cfg->server_tls_protocols,
			.ciphers = cfg->server_tls_ciphers,
			.tls13_ciphers = "",
			.dheparams = "none",
			.ecdhcurve = "",
		};
	}
}
