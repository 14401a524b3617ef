"""The inference core: which frames go to the models, and when. Pure decisions here; the loop applies them."""
