import type { ControlPlane } from './control-plane.js';
import type { BodyRead } from './responses.js';
import type { State } from './state.js';
import type { FaultOptions, RequestRecord } from './types.js';

/** What a route handler gets: the request, its path parameters, and the state to act on. */
export interface RouteContext {
  cp: ControlPlane;
  /** The state as of the request's arrival (a reset() meanwhile does not mix two states). */
  state: State;
  request: Request;
  url: URL;
  params: Record<string, string>;
  record: RequestRecord;
  /** The fault taken for this request, if any (bundle routes read truncate/ignoreRange from it). */
  fault: FaultOptions | undefined;
  /** The body, read up front for every non-multipart request (so faulted requests are recorded too). */
  body: BodyRead;
  /** The parsed JSON body, or undefined when there is none or it is not JSON. */
  json: unknown;
  now: number;
}
