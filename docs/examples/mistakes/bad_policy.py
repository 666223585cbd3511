from wsroute import WsRouter

ws = WsRouter(slow_consumer="drop")
