"""sergrad.corpora"""
