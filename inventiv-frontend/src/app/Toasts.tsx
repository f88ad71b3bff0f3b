// Short notices of the live stream (an instance ready or failed), in the
// corner of every page: read out politely by screen readers, each with a
// link to what it is about, gone after 10 s or when closed.
import { useCallback, useEffect, useRef, useState } from 'react';
import { Link } from 'react-router';
import type { Toast } from '../instances/liveEvents';

const SHOWN_MS = 10_000;
const MAX_SHOWN = 4;

interface Shown extends Toast {
  id: number;
}

/** The notices shown and the function that adds one. */
export function useToasts(): { toasts: Shown[]; push: (t: Toast) => void; dismiss: (id: number) => void } {
  const [toasts, setToasts] = useState<Shown[]>([]);
  const next = useRef(0);
  const timers = useRef(new Map<number, ReturnType<typeof setTimeout>>());
  const dismiss = useCallback((id: number) => {
    setToasts((list) => list.filter((t) => t.id !== id));
    clearTimeout(timers.current.get(id));
    timers.current.delete(id);
  }, []);
  const push = useCallback(
    (t: Toast) => {
      next.current += 1;
      const id = next.current;
      setToasts((list) => [...list, { ...t, id }].slice(-MAX_SHOWN));
      timers.current.set(
        id,
        setTimeout(() => dismiss(id), SHOWN_MS),
      );
    },
    [dismiss],
  );
  useEffect(() => {
    const pending = timers.current;
    return () => pending.forEach((timer) => clearTimeout(timer));
  }, []);
  return { toasts, push, dismiss };
}

export function Toasts({ toasts, dismiss }: { toasts: Shown[]; dismiss: (id: number) => void }) {
  return (
    <div className="toasts" role="status" aria-live="polite" aria-label="Notifications">
      {toasts.map((t) => (
        <div key={t.id} className={`toast toast-${t.tone}`}>
          <Link to={t.to}>{t.text}</Link>
          <button type="button" className="icon-button" aria-label="Dismiss the notification" onClick={() => dismiss(t.id)}>
            ×
          </button>
        </div>
      ))}
    </div>
  );
}
