import { Code, ConnectError } from "@connectrpc/connect";

// The length-prefixed message framing that Connect streaming and gRPC share: one flags byte, a
// 4-byte big-endian length, the message.

/** Connect's end-of-stream flag (the last envelope carries the status as JSON). */
export const FLAG_END_STREAM = 0x02;

/** One envelope around `bytes`. */
export function envelope(flags: number, bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + bytes.length);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(bytes.length, 1);
  out.set(bytes, 5);
  return out;
}

/**
 * Splits a byte stream into envelopes. A message longer than `maxBytes` is refused as soon as
 * its length prefix arrives, so what is buffered never exceeds one allowed message.
 */
export class EnvelopeReader {
  private buffer: Buffer | undefined;

  constructor(private readonly maxBytes: number) {}

  /** Bytes of an incomplete envelope are buffered (the stream ended mid-message if it ends now). */
  get pending(): boolean {
    return this.buffer !== undefined;
  }

  /** Feeds a chunk; calls `onEnvelope` for every complete envelope. Throws on an oversized message. */
  push(chunk: Buffer, onEnvelope: (flags: number, data: Buffer) => void): void {
    const data = this.buffer ? Buffer.concat([this.buffer, chunk]) : chunk;
    this.buffer = undefined;
    let offset = 0;
    while (data.length - offset >= 5) {
      const length = data.readUInt32BE(offset + 1);
      if (length > this.maxBytes) throw messageTooLarge(length, this.maxBytes);
      if (data.length - offset < 5 + length) break;
      onEnvelope(data.readUInt8(offset), data.subarray(offset + 5, offset + 5 + length));
      offset += 5 + length;
    }
    // Keep only the incomplete tail (copied, so the chunk it came from can be freed).
    if (offset < data.length) this.buffer = Buffer.from(data.subarray(offset));
  }
}

/** The refusal of a message past the size limit (RESOURCE_EXHAUSTED, as connect-node refuses it). */
export function messageTooLarge(size: number, maxBytes: number): ConnectError {
  return new ConnectError(`message size ${size} is larger than the ${maxBytes} bytes allowed`, Code.ResourceExhausted);
}
