"""The web console: one place where staff see and run the whole installation.

Served by ``guildhall serve`` on its own listener (``[console]``, 127.0.0.1:8080 by
default). Server-rendered HTML (Jinja2 templates in this package); the pages read
without JavaScript, and one small script of ours (``static/console.js``) adds the
live event feed and image previews. No asset comes from elsewhere, so the
Content-Security-Policy allows only this origin.

Decisions where the issue is silent:

- Staff are accounts with role ``admin`` (everything) or ``moderator`` (moderation,
  tickets and bot sessions only); a moderator asking for another page gets 403.
- A sign-in lasts ``[console] session_ttl_seconds``; a password change ends it.
- Every form carries a CSRF token bound to the session (an HMAC of it under a key
  derived from the installation's secret); the sign-in form, before any session,
  one bound to a random cookie of its own. A post without the right token is
  refused with 403 and changes nothing; so is one whose ``Origin`` is another site.
- After a change the browser is sent back to the page (303) with a one-line notice
  in a short-lived signed cookie; a refused change re-renders the form with the
  error in place (HTTP 400, 404 or 409 as the core error says).
- Every change goes through the same core services as the APIs, as actor
  ``account:console:<username>``, so the audit rows and events are the APIs' own.
"""
