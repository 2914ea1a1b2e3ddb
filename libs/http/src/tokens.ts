/** Injection tokens for what every service gets from its bootstrap. */
export const LOGGER = Symbol('LOGGER');
export const NATS_HANDLES = Symbol('NATS_HANDLES');
