// t.js: rung's browser snippet. Hand-written, no build step, for browsers from 2020 on
// (ES2020). rung serves it with comments and needless spaces and line breaks taken out
// (minify in snippet.go), so: a comment stands on a line of its own; strings use
// quotes, never backticks; a regular expression holds no quote and no space.
//
// Delivery is at least once. A signal is in one of three places: this page's memory
// (for up to a second), a request, or the stored queue in localStorage that any later
// page of the site takes over. While the page lives, signals go by fetch (keepalive,
// text/plain: no CORS preflight) because its answer says what landed; what failed goes
// to the stored queue and is retried with backoff, here or on the next page. When the
// page goes away only a beacon is sure to leave, and a beacon never reports back: it is
// trusted unless the last request failed, in which case its signals are stored too. A
// resent signal keeps its event_id, so a duplicate is recognisable. Each signal carries
// ts, when it was made, and each request sent_at, when it left, both by this clock: the
// collector places a signal that waited in the queue when it was made, not when it
// arrived, and a wrong clock shifts nothing (only the difference counts).
((w, d) => {
  // Nothing the snippet does may throw into the host page.
  const safe = f => (...a) => {
    try {
      return f(...a)
    } catch {}
  }
  safe(() => {
    const nav = navigator, L = location, S = d.currentScript, H = history, now = Date.now
    // A second copy, a module script, a page that is not http(s): stay inert.
    if (!S || w.rung || !/^https?:$/.test(L.protocol)) return
    const A = k => S.getAttribute('data-' + k)
    const site = A('site') || L.hostname
    const url = new URL(A('endpoint') || '/collect', S.src).href
    const hash = A('hash') != null
    const off = A('respect-dnt') != null && (nav.doNotTrack == 1 || nav.globalPrivacyControl)
    // Cookieless: the id and the queue live and die with the tab session.
    const st = safe(() => A('cookieless') != null ? sessionStorage : localStorage)()
    const get = safe((s, k) => JSON.parse(s.getItem(k)))
    // Respecting a privacy signal means storing nothing at all.
    const put = safe((s, k, v) => off || s.setItem(k, JSON.stringify(v)))
    // 128 random bits as four decimal numbers: "2611814562-49035166-3948212811-729281934".
    const rid = () => crypto.getRandomValues(new Uint32Array(4)).join('-')
    const here = () => (hash ? L.href : L.href.split('#')[0]).slice(0, 2048)
    let id = off ? '' : get(st, 'rung_id') || rid(), q = [], fly = [], timer, tries = 0, last, path
    put(st, 'rung_id', id)
    // A stored queue means the collector failed the last page that tried.
    let down = !off && get(st, 'rung_q')?.length
    // take empties memory and the stored queue into the caller's hands; keep stores
    // signals again, the newest 50, none older than a day (an event_id starts with the
    // time it was made).
    const take = (s = (get(st, 'rung_q') || []).concat(q)) => (put(st, 'rung_q', q = []), s)
    const keep = b => put(st, 'rung_q', take().concat(b).filter(s => now() - parseInt(s.event_id) < 864e5).slice(-50))
    const json = (b, t = now()) => JSON.stringify(b.map(s => ({...s, sent_at: t})))
    const post = (b, s = json(b)) => fetch(url, {method: 'POST', body: s, keepalive: s.length < 6e4})
    // fly holds the signals of requests still out. Each failure stores again only what
    // it still owns: a page going away while the collector fails stores them first.
    const send = safe((b = take()) => {
      timer = 0
      fly = fly.concat(b)
      b[0] && post(b).then(r => {
        // 429 and 5xx may pass later; any other answer is final: a 400 stays a 400.
        if (r.status > 499 || r.status == 429) throw 0
        down = tries = 0
      }).catch(() => {
        down = 1
        keep(b.filter(s => fly.includes(s)))
        timer = setTimeout(send, Math.min(6e4, 1e3 * 2 ** ++tries))
      }).finally(() => fly = fly.filter(s => !b.includes(s)))
    })
    const leave = safe((b = take()) => {
      timer = clearTimeout(timer)
      b[0] && (nav.sendBeacon?.(url, json(b)) || post(b).catch(safe))
      if (down) {
        keep(b.concat(fly))
        fly = []
      }
    })
    const add = (s, t = now()) => {
      if (off) return
      q.push({...s, v: 2, ts: t, site, anonymous_id: id, event_id: t + '-' + rid(), url: s.url || here()})
      timer ||= setTimeout(send, 1e3)
    }
    const view = safe(() => {
      const u = here(), referrer = (last || d.referrer).slice(0, 2048) || void 0
      if (u == last) return
      last = u
      path = L.pathname
      add({type: 'pageview', url: u, referrer})
    })
    const api = w.rung = {
      id: () => id,
      track: (name, props, value) => add({type: 'event', name, props, value}),
      convert: (goal, value) => add({type: 'event', name: goal, value}),
      expose: (experiment, variant) => add({type: 'exposure', experiment, variant}),
      pageview: () => view(last = 0)
    }
    for (const k in api) api[k] = safe(api[k])
    ;['pushState', 'replaceState'].forEach((m, r) => {
      const o = H[m]
      H[m] = function () {
        const v = o.apply(this, arguments)
        // A replaceState that only tidies the query (drops utm_*, say) is no new page,
        // but the next navigation starts from the tidied address.
        r && L.pathname == path ? last = here() : view()
        return v
      }
    })
    w.addEventListener('popstate', view)
    hash && w.addEventListener('hashchange', view)
    w.addEventListener('pagehide', () => leave())
    d.addEventListener('visibilitychange', () => d.hidden && leave())
    d.addEventListener('submit', safe(e => {
      const f = e.target, n = f.getAttribute('data-rung-form')
      let i = f.elements.anonymous_id
      if (n != null) {
        // The hidden field lets the business backend tie the lead to this visitor.
        if (!i) {
          i = f.appendChild(d.createElement('input'))
          i.type = 'hidden'
          i.name = 'anonymous_id'
        }
        i.value = id
        add({type: 'event', name: 'form_submitted', props: n ? {form: n} : void 0})
      }
    }), true)
    view()
    down && send()
  })()
})(window, document)
