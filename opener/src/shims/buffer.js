// slip39 only calls Buffer.from(array of bytes): a Uint8Array does the same in the page.
export const Buffer = { from: (value) => Uint8Array.from(value) };
