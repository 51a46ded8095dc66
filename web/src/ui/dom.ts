/** Small DOM helpers: text only (names and URIs come from the chain: never parsed as HTML). */
import { describe } from "./errors";

export function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the page has no #${id}`);
  return node as T;
}

type Child = Node | string | null | undefined | false;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  props: Partial<Record<string, string>> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

export const cell = (text: string | number, title?: string): HTMLTableCellElement =>
  el("td", { text: String(text), title });

/** Show `err` (any error) as a readable sentence in `target` (a role=alert element), or hide it. */
export function showError(target: HTMLElement, err: unknown | null): void {
  if (err === null) {
    target.hidden = true;
    target.textContent = "";
    return;
  }
  target.textContent = describe(err);
  target.hidden = false;
}

/** Mark a button busy while `work` runs (disabled, aria-busy, label swapped), errors shown in `errorTarget`. */
export async function busy<T>(
  button: HTMLButtonElement,
  label: string,
  errorTarget: HTMLElement,
  work: () => Promise<T>,
): Promise<T | undefined> {
  const before = button.textContent;
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  button.textContent = label;
  showError(errorTarget, null);
  try {
    return await work();
  } catch (err) {
    showError(errorTarget, err);
    return undefined;
  } finally {
    button.disabled = false;
    button.removeAttribute("aria-busy");
    button.textContent = before;
  }
}
