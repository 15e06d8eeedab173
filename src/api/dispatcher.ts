import { EnvHttpProxyAgent, setGlobalDispatcher } from 'undici';

/**
 * Installs the production HTTP stack behind the global fetch: HTTPS_PROXY/HTTP_PROXY/NO_PROXY
 * honoured, bounded connect/header/idle-body timeouts, and a keep-alive shorter than the usual
 * 5 s server idle timeout so a pooled socket is not reused just as the server closes it.
 * Called from main() at start (process environment) and again once a command has loaded its
 * configuration (which adds proxy variables from agent.env). Tests leave the global alone so msw
 * sees every request.
 */
export function installHttpDispatcher(proxyEnv: Readonly<Record<string, string>> = process.env as Record<string, string>): void {
  // Lowercase wins over uppercase, as undici and curl read them.
  const httpProxy = proxyEnv.http_proxy ?? proxyEnv.HTTP_PROXY;
  const httpsProxy = proxyEnv.https_proxy ?? proxyEnv.HTTPS_PROXY;
  const noProxy = proxyEnv.no_proxy ?? proxyEnv.NO_PROXY;
  setGlobalDispatcher(
    new EnvHttpProxyAgent({
      ...(httpProxy === undefined ? {} : { httpProxy }),
      ...(httpsProxy === undefined ? {} : { httpsProxy }),
      ...(noProxy === undefined ? {} : { noProxy }),
      connectTimeout: 10_000,
      headersTimeout: 30_000,
      bodyTimeout: 60_000,
      keepAliveTimeout: 4_000,
      keepAliveMaxTimeout: 4_000,
      // As curl does: plain http:// goes to an http proxy in absolute form (many proxies refuse
      // CONNECT to ports other than 443); https:// is always tunnelled with CONNECT.
      proxyTunnel: false,
    }),
  );
}
