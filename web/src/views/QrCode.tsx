/**
 * A QR code drawn locally on a canvas (no image service, no `data:` URL). The encoder is
 * loaded only by the pages that show one, so phones voting never download it.
 */

import { useEffect, useRef } from 'preact/hooks';

export function QrCode({ text, size = 320 }: { text: string; size?: number }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    let current = true;
    void import('qrcode').then(({ default: QRCode }) => {
      if (!current || !canvas.current) return;
      return QRCode.toCanvas(canvas.current, text, {
        width: size,
        margin: 2,
        errorCorrectionLevel: 'M',
        color: { dark: '#000000', light: '#ffffff' },
      });
    });
    return () => {
      current = false;
    };
  }, [text, size]);
  return <canvas class="qr" ref={canvas} width={size} height={size} role="img" aria-label={`QR code for ${text}`} />;
}
