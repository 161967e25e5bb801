; The "installed system" for BIOS machines: a boot sector that prints its marker on COM1
; and halts. The installer patches the MAC into the placeholder after `marker:`.
bits 16
org 0x7c00
start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7c00
    mov dx, 0x3f9          ; IER: no interrupts
    xor al, al
    out dx, al
    mov dx, 0x3fb          ; LCR: DLAB on
    mov al, 0x80
    out dx, al
    mov dx, 0x3f8          ; divisor 1: 115200 baud
    mov al, 1
    out dx, al
    mov dx, 0x3f9
    xor al, al
    out dx, al
    mov dx, 0x3fb          ; 8N1, DLAB off
    mov al, 3
    out dx, al
    mov si, message
.next:
    lodsb
    test al, al
    jz .halt
    mov bl, al
    mov dx, 0x3fd          ; LSR: wait for an empty transmit register
.wait:
    in al, dx
    test al, 0x20
    jz .wait
    mov dx, 0x3f8
    mov al, bl
    out dx, al
    jmp .next
.halt:
    hlt
    jmp .halt
message:
    db 13, 10, "BOOTFLEET-MARKER-"
marker:
    db "00:00:00:00:00:00", 13, 10, 0
    times 446 - ($ - $$) db 0
    times 64 db 0          ; no partitions
    dw 0xaa55
