"""What the planes share: the words both sides of a wire must agree on, and the small
async toolbox every long-lived object uses. Imports nothing from the project."""
