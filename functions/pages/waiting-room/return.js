// Where the waiting room sends a visitor back to: the `return` parameter, only if it stays on
// this site. Browsers drop tab, CR and LF from URLs and read "\" as "/", so "/\t/evil.com"
// would leave the site: control characters are removed first, then the URL resolved against
// this origin, which must not change. What comes back is a path by construction: one "/" and
// then neither "/" nor "\" (the resolved path of "/..//evil.com" is "//evil.com", which a
// browser reads as another host), resolving to this origin again. The room's own pages are
// never a destination (a loop).
(function (global) {
  'use strict';
  function safeReturn(value, origin) {
    if (typeof value !== 'string' || value === '') return '/';
    var cleaned = value.replace(/[\u0000-\u001F\u007F]/g, '');
    var url;
    try {
      url = new URL(cleaned, origin);
    } catch (e) {
      return '/';
    }
    if (url.origin !== origin || url.pathname.indexOf('/waiting-room/') === 0) return '/';
    var path = url.pathname + url.search + url.hash;
    if (!/^\/(?![\/\\])/.test(path)) return '/';
    return new URL(path, origin).origin === origin ? path : '/';
  }
  global.floodgateReturn = safeReturn;
})(typeof window !== 'undefined' ? window : globalThis);
