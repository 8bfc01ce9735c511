#!/usr/bin/env node
// -*- coding: iso-8859-15-unix -*-
function euro() { return "¤"; }
