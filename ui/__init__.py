"""AssetLens web app (Streamlit): ``assetlens ui`` runs ``ui/app.py``."""
