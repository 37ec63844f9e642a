// The demo's own code, the part a real site would write: a three-view single-page app
// that navigates with history.pushState, and a two-variant experiment on the headline.
// t.js sees the navigations by itself; the exposure is the one call the site makes.
(() => {
  const views = {'/demo': 'home', '/demo/': 'home', '/demo/pricing': 'pricing', '/demo/signup': 'signup'}
  const headlines = {control: 'Team notes that write themselves', b: 'Stop losing decisions in meetings'}
  const rung = window.rung
  const id = rung ? rung.id() : ''
  // A stable split by anonymous_id, so a visitor keeps their variant; ?variant= forces one.
  let h = 0
  for (const c of id) h = (h * 31 + c.charCodeAt(0)) >>> 0
  const forced = new URLSearchParams(location.search).get('variant')
  const variant = forced in headlines ? forced : h % 2 ? 'b' : 'control'
  const utm = [...new URLSearchParams(location.search)].filter(([k]) => k.startsWith('utm_'))
  let exposed = false

  document.getElementById('anon').textContent = id || '(not tracking)'
  document.getElementById('variant').textContent = variant
  document.getElementById('utm').textContent = utm.map(([k, v]) => k + '=' + v).join(' ') || '(none)'
  document.getElementById('headline').textContent = headlines[variant]

  function render() {
    const view = views[location.pathname] || 'home'
    for (const s of document.querySelectorAll('section[data-view]')) s.hidden = s.dataset.view !== view
    for (const a of document.querySelectorAll('nav a')) a.classList.toggle('on', a.pathname === location.pathname)
    // Exposed when the headline is shown, once per page load.
    if (view === 'home' && !exposed && rung) {
      exposed = true
      rung.expose('hero-copy', variant)
    }
    document.body.dataset.page = view
  }

  document.addEventListener('click', e => {
    const a = e.target.closest('a[data-nav]')
    if (!a || e.button || e.metaKey || e.ctrlKey || e.shiftKey) return
    e.preventDefault()
    if (a.pathname !== location.pathname) history.pushState(null, '', a.pathname)
    render()
    scrollTo(0, 0)
  })
  addEventListener('popstate', render)
  render()
})()
