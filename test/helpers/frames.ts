// Frame builders live in src/wire/frames.ts (control code and scenarios use them too).
export * from '../../src/wire/frames';
