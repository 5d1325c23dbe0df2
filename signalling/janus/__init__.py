"""The signalling server's side of Janus SFUs: the Janus API client (``client``), the
VideoRoom operations a session needs (``videoroom``) and the pool of servers
(``pool``). See docs/architecture.md, "Janus"."""
