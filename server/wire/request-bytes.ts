import { type DescMessage, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { createContextKey, type HandlerContext } from "@connectrpc/connect";

/** The size of the request message as it arrived, set by the wire path (connect-node does not say). */
export const requestBytesKey = createContextKey<number | undefined>(undefined, { description: "request message bytes" });

/** The request's size on the wire: as read by the wire path, else measured by encoding it again. */
export function requestBytesOf<Desc extends DescMessage>(ctx: HandlerContext, schema: Desc, message: MessageShape<Desc>): number {
  return ctx.values.get(requestBytesKey) ?? toBinary(schema, message).byteLength;
}
