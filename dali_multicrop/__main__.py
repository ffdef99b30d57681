from .cli import app

app(prog_name="dali-multicrop")
