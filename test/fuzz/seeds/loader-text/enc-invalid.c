/* café € Ã â‚ ğŸ˜ À¯ í € õÿ ô€€ ok Ã© */
int invalid(const char *s) { return s[0] == 'é'; }
