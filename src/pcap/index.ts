// Capture files: read classic pcap and pcapng, write classic pcap.
export {
  CaptureError,
  CaptureErrorCode,
  MAX_CAPLEN,
  parseCapture,
  readCaptureFile,
} from './reader';
export type { Capture, CaptureFrame, ParseOptions, TruncatedAt } from './reader';
export { PcapWriter } from './writer';
export type { PcapWriterOptions } from './writer';
