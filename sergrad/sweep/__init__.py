"""sergrad.sweep"""
