from fastapi import FastAPI

from wsroute import WsRouter

chat = WsRouter()
admin = WsRouter()
app = FastAPI()
chat.install(app)
admin.install(app)
