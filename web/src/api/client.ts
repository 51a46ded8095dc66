/** fetch + JSON with RFC 9457 problem+json errors turned into `ApiError` (the API's `detail` is the message). */

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly path: string;
  constructor(message: string, status: number, code: string, path: string) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.path = path;
  }
}

/** The network failed before any answer (server down, connection refused). */
export class ApiUnreachableError extends Error {
  constructor(path: string) {
    super(`The Cairn API did not answer (${path}): check that the server is running, then retry.`);
    this.name = "ApiUnreachableError";
  }
}

export interface Answer<T> {
  body: T;
  response: Response;
}

async function request<T>(method: string, path: string, body?: unknown, raw?: Blob): Promise<Answer<T>> {
  const init: RequestInit = {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json, application/problem+json" },
  };
  if (raw !== undefined) {
    init.body = raw;
    (init.headers as Record<string, string>)["Content-Type"] = "application/octet-stream";
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] = "application/json";
  }
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new ApiUnreachableError(path);
  }
  const text = await response.text();
  let parsed: unknown = undefined;
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
  }
  if (!response.ok) {
    const problem = (parsed ?? {}) as { detail?: unknown; code?: unknown; title?: unknown };
    const detail =
      typeof problem.detail === "string" && problem.detail
        ? problem.detail
        : `${response.status} ${typeof problem.title === "string" ? problem.title : response.statusText}`;
    const code = typeof problem.code === "string" ? problem.code : `http_${response.status}`;
    throw new ApiError(detail, response.status, code, path);
  }
  if (parsed === undefined && text) {
    throw new ApiError(`the API answered ${path} with something that is not JSON`, response.status, "not_json", path);
  }
  return { body: parsed as T, response };
}

export const getJSON = async <T>(path: string): Promise<T> => (await request<T>("GET", path)).body;
export const getWithResponse = <T>(path: string): Promise<Answer<T>> => request<T>("GET", path);
export const postJSON = async <T>(path: string, body?: unknown): Promise<T> =>
  (await request<T>("POST", path, body ?? {})).body;
export const postWithResponse = <T>(path: string, body?: unknown): Promise<Answer<T>> =>
  request<T>("POST", path, body ?? {});
/** PUT raw bytes (the content store's upload), JSON answer. */
export const putBytes = async <T>(path: string, bytes: Blob): Promise<Answer<T>> =>
  request<T>("PUT", path, undefined, bytes);
